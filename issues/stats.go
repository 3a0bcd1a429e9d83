package issues

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// Handling-time figures.
//
//   - First-response time: first_response_at - created_at (frozen by the first reply or by
//     "customer contacted"), for issues that have one. Counted for the agent who wrote the
//     first reply when that reply is what froze it, else for the issue's assignee.
//   - Resolution time: resolved_at - created_at for issues resolved (or closed: closed_at
//     when there is no resolved_at). Counted for the agent who resolved it, else the
//     assignee. An issue reopened and resolved again counts its last resolution.
//   - Both are wall-clock durations, not SLA clock time: they say how long customers
//     waited, pauses included.
//   - The range selects issues by created_at, from inclusive, to exclusive.
//   - Median and p90 are computed in Go by linear interpolation between closest ranks
//     (p at rank (n-1)·p of the sorted values; the median of an even count is the mean of
//     the middle two), so both engines answer the same.

// StatsQuery selects issues for Stats.
type StatsQuery struct {
	From, To  time.Time
	Channels  []int64 // required: the channels the reader may see
	ChannelID int64   // 0: all of Channels
}

// Figure is the distribution of one handling time.
type Figure struct {
	Count         int      `json:"count"`
	MedianSeconds *float64 `json:"median_seconds"` // null when Count is 0
	P90Seconds    *float64 `json:"p90_seconds"`
}

// Figures are the handling times of a group of issues.
type Figures struct {
	FirstResponse Figure `json:"first_response"`
	Resolution    Figure `json:"resolution"`
}

// AgentStats are one agent's figures.
type AgentStats struct {
	AgentID int64  `json:"agent_id"`
	Name    string `json:"name"`
	Figures
}

// ChannelStats are one channel's figures.
type ChannelStats struct {
	ChannelID int64  `json:"channel_id"`
	Name      string `json:"name"`
	Issues    int    `json:"issues"` // opened in the range
	Figures
}

// Counts are the issues as they stand now (not limited to the range).
type Counts struct {
	Open       int `json:"open"`       // open or in progress
	Unassigned int `json:"unassigned"` // open or in progress, nobody assigned
	Breached   int `json:"breached"`   // open or in progress with a breached SLA
}

// Stats answers GET /api/stats.
type Stats struct {
	From     time.Time       `json:"from"`
	To       time.Time       `json:"to"`
	Issues   int             `json:"issues"` // opened in the range
	Overall  Figures         `json:"overall"`
	Agents   []*AgentStats   `json:"agents"`   // by agent id
	Channels []*ChannelStats `json:"channels"` // by channel id; channels without issues in the range are left out
	Counts   Counts          `json:"counts"`
}

// Percentile returns the p-quantile (0 ≤ p ≤ 1) of sorted values by linear interpolation
// between closest ranks. It panics on an empty slice.
func Percentile(sorted []float64, p float64) float64 {
	h := float64(len(sorted)-1) * p
	lo := math.Floor(h)
	i := int(lo)
	if i+1 >= len(sorted) {
		return sorted[len(sorted)-1]
	}
	return sorted[i] + (h-lo)*(sorted[i+1]-sorted[i])
}

// figure summarizes durations in seconds.
func figure(secs []float64) Figure {
	f := Figure{Count: len(secs)}
	if len(secs) == 0 {
		return f
	}
	s := slices.Clone(secs)
	slices.Sort(s)
	med, p90 := Percentile(s, 0.5), Percentile(s, 0.9)
	f.MedianSeconds, f.P90Seconds = &med, &p90
	return f
}

// samples collects durations for a group.
type samples struct{ first, res []float64 }

func (s *samples) figures() Figures {
	return Figures{FirstResponse: figure(s.first), Resolution: figure(s.res)}
}

// Stats computes the handling-time figures of the issues opened in [From, To) in the
// channels asked for, and the current counts of those channels.
func (s *Service) Stats(ctx context.Context, q StatsQuery) (*Stats, error) {
	out := &Stats{From: q.From, To: q.To, Agents: []*AgentStats{}, Channels: []*ChannelStats{}}
	chans := q.Channels
	if q.ChannelID != 0 {
		if !slices.Contains(q.Channels, q.ChannelID) {
			return out, nil
		}
		chans = []int64{q.ChannelID}
	}
	if len(chans) == 0 {
		return out, nil
	}
	marks := make([]string, len(chans))
	args := make([]any, 0, len(chans)+2)
	for i, id := range chans {
		marks[i] = fmt.Sprintf("$%d", i+1)
		args = append(args, id)
	}
	in := "(" + strings.Join(marks, ",") + ")"

	// Current counts.
	err := s.db.QueryRowContext(ctx, `SELECT COUNT(*),
		COALESCE(SUM(CASE WHEN assignee_id IS NULL THEN 1 ELSE 0 END), 0),
		COALESCE(SUM(CASE WHEN sla_first_response_breached_at IS NOT NULL OR sla_resolution_breached_at IS NOT NULL THEN 1 ELSE 0 END), 0)
		FROM issues WHERE status IN ('open', 'in_progress') AND channel_id IN `+in, args...).
		Scan(&out.Counts.Open, &out.Counts.Unassigned, &out.Counts.Breached)
	if err != nil {
		return nil, fmt.Errorf("issues: stats counts: %w", err)
	}

	// The first reply of each issue of the range: who wrote it and when.
	n := len(args)
	rangeArgs := append(slices.Clone(args), q.From.UTC(), q.To.UTC())
	rangeWhere := `channel_id IN ` + in + fmt.Sprintf(` AND created_at >= $%d AND created_at < $%d`, n+1, n+2)
	type reply struct {
		author *int64
		at     time.Time
	}
	firstReply := map[int64]reply{}
	rrows, err := s.db.QueryContext(ctx, `SELECT issue_id, author_id, created_at FROM comments
		WHERE kind = 'reply' AND issue_id IN (SELECT id FROM issues WHERE `+rangeWhere+`) ORDER BY issue_id, id`, rangeArgs...)
	if err != nil {
		return nil, fmt.Errorf("issues: stats: replies: %w", err)
	}
	for rrows.Next() {
		var id int64
		var r reply
		if err := rrows.Scan(&id, &r.author, &r.at); err != nil {
			rrows.Close()
			return nil, fmt.Errorf("issues: stats: replies: %w", err)
		}
		if _, ok := firstReply[id]; !ok {
			firstReply[id] = r
		}
	}
	if err := rrows.Close(); err != nil {
		return nil, fmt.Errorf("issues: stats: replies: %w", err)
	}

	rows, err := s.db.QueryContext(ctx, `SELECT id, channel_id, assignee_id, resolved_by, created_at, first_response_at,
		resolved_at, closed_at, status FROM issues WHERE `+rangeWhere+` ORDER BY id`, rangeArgs...)
	if err != nil {
		return nil, fmt.Errorf("issues: stats: %w", err)
	}
	defer rows.Close()
	var all samples
	byAgent := map[int64]*samples{}
	byChannel := map[int64]*samples{}
	issuesByChannel := map[int64]int{}
	agent := func(id int64) *samples {
		if byAgent[id] == nil {
			byAgent[id] = &samples{}
		}
		return byAgent[id]
	}
	for rows.Next() {
		var (
			id, channelID                   int64
			assignee, resolver              *int64
			created                         time.Time
			firstResponse, resolved, closed *time.Time
			status                          Status
		)
		if err := rows.Scan(&id, &channelID, &assignee, &resolver, &created, &firstResponse, &resolved, &closed, &status); err != nil {
			return nil, fmt.Errorf("issues: stats: %w", err)
		}
		out.Issues++
		issuesByChannel[channelID]++
		ch := byChannel[channelID]
		if ch == nil {
			ch = &samples{}
			byChannel[channelID] = ch
		}
		if firstResponse != nil {
			d := firstResponse.Sub(created).Seconds()
			all.first = append(all.first, d)
			ch.first = append(ch.first, d)
			who := assignee
			if r, ok := firstReply[id]; ok && r.author != nil && !r.at.After(*firstResponse) {
				who = r.author
			}
			if who != nil {
				agent(*who).first = append(agent(*who).first, d)
			}
		}
		end := resolved
		if end == nil && status == Closed {
			end = closed
		}
		if end != nil && (status == Resolved || status == Closed) {
			d := end.Sub(created).Seconds()
			all.res = append(all.res, d)
			ch.res = append(ch.res, d)
			who := resolver
			if who == nil {
				who = assignee
			}
			if who != nil {
				agent(*who).res = append(agent(*who).res, d)
			}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("issues: stats: %w", err)
	}
	out.Overall = all.figures()

	ids := make([]int64, 0, len(byAgent))
	for id := range byAgent {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var names map[int64]string
	if s.cfg.People != nil && len(ids) > 0 {
		if names, err = s.cfg.People.Names(ctx, s.db, ids); err != nil {
			return nil, fmt.Errorf("issues: stats: names: %w", err)
		}
	}
	for _, id := range ids {
		out.Agents = append(out.Agents, &AgentStats{AgentID: id, Name: names[id], Figures: byAgent[id].figures()})
	}
	cids := make([]int64, 0, len(byChannel))
	for id := range byChannel {
		cids = append(cids, id)
	}
	slices.Sort(cids)
	for _, id := range cids {
		out.Channels = append(out.Channels, &ChannelStats{ChannelID: id, Issues: issuesByChannel[id], Figures: byChannel[id].figures()})
	}
	return out, nil
}
