package hub

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-hq/switchboard/store"
)

// Event is one committed change on a topic.
type Event struct {
	Topic     Topic           `json:"topic"`
	Seq       int64           `json:"seq"`
	Type      string          `json:"type"`
	Data      json.RawMessage `json:"data"`
	CreatedAt time.Time       `json:"created_at"`
	ID        int64           `json:"id"` // the events row id: a tie-breaker when merging topics, never a cursor
}

// Publisher is told about each event once its transaction has committed.
type Publisher interface {
	Publish(ev *Event)
}

// Log appends events to the database inside the writer's transaction and hands them to
// the publisher after commit.
type Log struct {
	db  *store.DB
	pub Publisher
	now func() time.Time
}

// NewLog returns a Log on db. pub may be set later with SetPublisher (the hub needs the
// log to fill gaps, and the log needs the hub to publish).
func NewLog(db *store.DB, now func() time.Time) *Log {
	if now == nil {
		now = time.Now
	}
	return &Log{db: db, now: now}
}

// SetPublisher sets where committed events go. Call it before serving.
func (l *Log) SetPublisher(pub Publisher) { l.pub = pub }

// Append records an event of type typ with data (marshalled to a JSON object) on topic,
// in tx. The topic's counter row is locked by the UPDATE until commit, so on PostgreSQL
// concurrent writers to one topic commit in seq order. Append late in a transaction: the
// lock is held from here to commit.
func (l *Log) Append(ctx context.Context, tx *store.Tx, topic Topic, typ string, data any) (*Event, error) {
	payload, err := json.Marshal(data)
	if err != nil {
		return nil, fmt.Errorf("hub: encode %s event: %w", typ, err)
	}
	if len(payload) == 0 || payload[0] != '{' {
		return nil, fmt.Errorf("hub: %s event data must be a JSON object", typ)
	}
	var topicID, seq int64
	err = tx.QueryRowContext(ctx, `INSERT INTO topics (name, seq) VALUES ($1, 1)
		ON CONFLICT (name) DO UPDATE SET seq = topics.seq + 1
		RETURNING id, seq`, string(topic)).Scan(&topicID, &seq)
	if err != nil {
		return nil, fmt.Errorf("hub: next seq of %s: %w", topic, store.Err(err))
	}
	now := l.now().UTC().Truncate(time.Microsecond)
	ev := &Event{Topic: topic, Seq: seq, Type: typ, Data: payload, CreatedAt: now}
	err = tx.QueryRowContext(ctx, `INSERT INTO events (topic_id, seq, type, payload, created_at)
		VALUES ($1, $2, $3, $4, $5) RETURNING id`, topicID, seq, typ, string(payload), now).Scan(&ev.ID)
	if err != nil {
		return nil, fmt.Errorf("hub: append %s event: %w", typ, store.Err(err))
	}
	tx.AfterCommit(func() {
		if l.pub != nil {
			l.pub.Publish(ev)
		}
	})
	return ev, nil
}

// head is a topic's newest seq and the highest seq already pruned away.
type head struct {
	seq    int64
	pruned int64
}

// heads reads the current head of each topic. A topic that never had an event is absent
// and stands at seq 0.
func (l *Log) heads(ctx context.Context, topics []Topic) (map[Topic]head, error) {
	out := make(map[Topic]head, len(topics))
	for chunk := range slices.Chunk(topics, 500) {
		args := make([]any, len(chunk))
		marks := make([]string, len(chunk))
		for i, t := range chunk {
			args[i] = string(t)
			marks[i] = "$" + strconv.Itoa(i+1)
		}
		rows, err := l.db.QueryContext(ctx, `SELECT name, seq, pruned_through FROM topics WHERE name IN (`+strings.Join(marks, ",")+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("hub: read heads: %w", err)
		}
		for rows.Next() {
			var name string
			var h head
			if err := rows.Scan(&name, &h.seq, &h.pruned); err != nil {
				rows.Close()
				return nil, fmt.Errorf("hub: read heads: %w", err)
			}
			out[Topic(name)] = h
		}
		if err := rows.Close(); err != nil {
			return nil, fmt.Errorf("hub: read heads: %w", err)
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("hub: read heads: %w", err)
		}
	}
	return out, nil
}

// Head returns the newest seq of one topic (0 when it has none).
func (l *Log) Head(ctx context.Context, topic Topic) (int64, error) {
	hs, err := l.heads(ctx, []Topic{topic})
	if err != nil {
		return 0, err
	}
	return hs[topic].seq, nil
}

// Range returns the events of topic with after < seq <= upTo, in seq order, at most limit.
func (l *Log) Range(ctx context.Context, topic Topic, after, upTo int64, limit int) ([]*Event, error) {
	rows, err := l.db.QueryContext(ctx, `SELECT e.id, e.seq, e.type, e.payload, e.created_at
		FROM events e JOIN topics t ON t.id = e.topic_id
		WHERE t.name = $1 AND e.seq > $2 AND e.seq <= $3
		ORDER BY e.seq LIMIT $4`, string(topic), after, upTo, limit)
	if err != nil {
		return nil, fmt.Errorf("hub: read %s: %w", topic, err)
	}
	defer rows.Close()
	var out []*Event
	for rows.Next() {
		ev := &Event{Topic: topic}
		var payload string
		if err := rows.Scan(&ev.ID, &ev.Seq, &ev.Type, &payload, &ev.CreatedAt); err != nil {
			return nil, fmt.Errorf("hub: read %s: %w", topic, err)
		}
		ev.Data = json.RawMessage(payload)
		out = append(out, ev)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("hub: read %s: %w", topic, err)
	}
	return out, nil
}

// Prune deletes events older than olderThan, keeping at least keep events per topic, and
// records the highest seq removed so that cursors behind it get a resync rather than a
// silent gap.
func (l *Log) Prune(ctx context.Context, olderThan time.Time, keep int64) (int64, error) {
	var removed int64
	err := l.db.InTx(ctx, func(tx *store.Tx) error {
		removed = 0
		rows, err := tx.QueryContext(ctx, `SELECT t.id, MAX(e.seq) FROM events e JOIN topics t ON t.id = e.topic_id
			WHERE e.created_at < $1 AND e.seq <= t.seq - $2 GROUP BY t.id`, olderThan.UTC(), keep)
		if err != nil {
			return err
		}
		type cut struct{ topic, through int64 }
		var cuts []cut
		for rows.Next() {
			var c cut
			if err := rows.Scan(&c.topic, &c.through); err != nil {
				rows.Close()
				return err
			}
			cuts = append(cuts, c)
		}
		if err := rows.Close(); err != nil {
			return err
		}
		for _, c := range cuts {
			res, err := tx.ExecContext(ctx, `DELETE FROM events WHERE topic_id = $1 AND seq <= $2`, c.topic, c.through)
			if err != nil {
				return err
			}
			n, _ := res.RowsAffected()
			removed += n
			if _, err := tx.ExecContext(ctx, `UPDATE topics SET pruned_through = $1 WHERE id = $2 AND pruned_through < $1`, c.through, c.topic); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("hub: prune: %w", err)
	}
	return removed, nil
}
