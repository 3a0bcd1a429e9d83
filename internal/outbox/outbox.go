// Package outbox delivers outbound messages (SMS and email replies) durably.
//
// A message is a row inserted by Enqueue in the same transaction as the reply it
// delivers, so a committed reply is always delivered or visibly not, and a restart loses
// nothing. A worker on every node (Run) claims due rows with a lease (claimed_until) so
// two nodes never send one row at once, hands each to the connector of its kind, and
// records the outcome:
//
//   - accepted: state sent, the provider's id stored on the row and on the comment;
//   - transient (429, 5xx, nothing reached the provider): retried with exponential backoff
//     and jitter at next_attempt_at, which survives restarts, until GiveUpAfter;
//   - permanent (an invalid number): failed at once, with the provider's code and a reason;
//   - indeterminate (a timeout or a connection lost after the request was sent, or a node
//     that died mid-send): unknown. Such a row is never sent again unless an agent says so
//     (Retry), because a customer must not get the same text twice.
//
// Messages to one recipient on one channel (a lane) go out in order: a row is claimed
// only when no earlier row of its lane is waiting or being sent.
//
// Every change is mirrored on the reply comment (delivery_status, external_id) and
// announced as a comment.delivery event on the issue's topic, in the same transaction.
package outbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	mathrand "math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-hq/switchboard/hub"
	"github.com/switchboard-hq/switchboard/internal/httpx"
	"github.com/switchboard-hq/switchboard/store"
)

// State is where a row stands.
type State string

// The states of a row.
const (
	Pending   State = "pending"
	Sending   State = "sending"
	Sent      State = "sent"
	Failed    State = "failed"
	Unknown   State = "unknown"
	Discarded State = "discarded"
)

// Outgoing is a message to enqueue.
type Outgoing struct {
	CommentID int64  // the reply it delivers; 0 for none
	IssueID   int64  // the issue whose topic hears of its progress; 0 for none
	ChannelID int64  // the channel it leaves from (its number or mailbox)
	Connector string // "sms", "email": which connector delivers it
	To        string // E.164 number or email address
	Body      string
	Payload   any // connector extras, stored as JSON; nil for none
}

// Message is a claimed row, handed to its connector.
type Message struct {
	ID        int64
	CommentID int64
	IssueID   int64
	ChannelID int64
	Connector string
	To        string
	Body      string
	Payload   json.RawMessage
	Attempt   int // 1 on the first attempt
}

// Receipt is a connector's answer when the provider took the message.
type Receipt struct {
	ExternalID string // the provider's id (Twilio MessageSid, email Message-ID); may be empty
	Status     string // the provider's status ("queued", "sent"); empty means "sent"
}

// Connector delivers messages of one kind. Deliver returns a *Error to say how a failure
// should be treated; any other error counts as indeterminate (never re-sent blindly).
// ctx carries the attempt's deadline.
type Connector interface {
	Deliver(ctx context.Context, m *Message) (*Receipt, error)
}

// Checker is implemented by connectors that refuse some messages up front (an opted-out
// recipient). Check runs inside the enqueuing transaction; its error aborts it.
type Checker interface {
	Check(ctx context.Context, q store.Querier, o *Outgoing) error
}

// Outcome classifies a failed attempt.
type Outcome int

// The outcomes of a failed attempt.
const (
	// Transient: nothing reached the provider, or it asked us to come back (429, 5xx).
	Transient Outcome = iota + 1
	// Permanent: the provider refused the message; sending it again will not help.
	Permanent
	// Indeterminate: the message may or may not have been sent.
	Indeterminate
)

// Error is a failed attempt, classified by the connector.
type Error struct {
	Outcome    Outcome
	Code       string        // the provider's error code, e.g. "21211"; may be empty
	Reason     string        // readable, shown to agents
	RetryAfter time.Duration // Transient: the provider's hint, if any
	Err        error         // the underlying error, for logs
}

func (e *Error) Error() string {
	s := "outbox: " + e.Reason
	if e.Code != "" {
		s += " (code " + e.Code + ")"
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// Config configures a Service. Zero values take the documented defaults.
type Config struct {
	Now    func() time.Time // default time.Now
	Logger *slog.Logger     // default: discard
	// SendTimeout bounds one delivery attempt. Default 30 s.
	SendTimeout time.Duration
	// Lease is how long a claimed row is reserved for its worker; a row still sending
	// when its lease ends is marked unknown. Default SendTimeout + 30 s; at least that.
	Lease time.Duration
	// RetryBase and RetryMax bound the exponential backoff between transient failures.
	// Defaults 2 s and 10 min.
	RetryBase, RetryMax time.Duration
	// GiveUpAfter is how long transient failures are retried before the message is
	// failed. Default 24 h.
	GiveUpAfter time.Duration
	// Poll is how often the worker looks for due rows it was not told about (another
	// node's, or backoffs ending). Default 2 s.
	Poll time.Duration
	// Concurrency is how many deliveries one node runs at once. Default 4.
	Concurrency int
	// Jitter returns a number in [0, 1); default math/rand/v2.
	Jitter  func() float64
	Metrics prometheus.Registerer
}

// Service is the outbox.
type Service struct {
	db  *store.DB
	log *hub.Log
	cfg Config

	mu         sync.Mutex
	connectors map[string]Connector // guarded by mu

	wake     chan struct{}
	outcomes *prometheus.CounterVec
}

// New returns an outbox on db that announces changes through log.
func New(db *store.DB, log *hub.Log, cfg Config) *Service {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.SendTimeout <= 0 {
		cfg.SendTimeout = 30 * time.Second
	}
	if cfg.Lease < cfg.SendTimeout+time.Second {
		cfg.Lease = cfg.SendTimeout + 30*time.Second
	}
	if cfg.RetryBase <= 0 {
		cfg.RetryBase = 2 * time.Second
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = 10 * time.Minute
	}
	if cfg.GiveUpAfter <= 0 {
		cfg.GiveUpAfter = 24 * time.Hour
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 2 * time.Second
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 4
	}
	if cfg.Jitter == nil {
		cfg.Jitter = mathrand.Float64
	}
	s := &Service{
		db: db, log: log, cfg: cfg,
		connectors: map[string]Connector{},
		wake:       make(chan struct{}, 1),
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_outbox_attempts_total",
			Help: "Outbound delivery attempts by connector and outcome.",
		}, []string{"connector", "outcome"}),
	}
	if cfg.Metrics != nil {
		cfg.Metrics.MustRegister(s.outcomes)
	}
	return s
}

// Register makes c deliver the messages of kind connector.
func (s *Service) Register(connector string, c Connector) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.connectors[connector] = c
}

func (s *Service) connector(name string) Connector {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.connectors[name]
}

func (s *Service) now() time.Time { return s.cfg.Now().UTC().Truncate(time.Microsecond) }

// Kick wakes the worker to look for due rows now.
func (s *Service) Kick() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// ErrNoRecipient refuses a message with nowhere to go.
var ErrNoRecipient = httpx.Errorf(http.StatusConflict, "the customer has no address on this channel to reply to")

// Enqueue records o in tx, to be delivered once tx commits. The connector's Checker, if
// any, may refuse it (its error is returned as is, e.g. a 409 for an opted-out customer).
// The comment, when there is one, is marked queued.
func (s *Service) Enqueue(ctx context.Context, tx *store.Tx, o Outgoing) (int64, error) {
	if o.To == "" {
		return 0, ErrNoRecipient
	}
	if o.Connector == "" || o.ChannelID == 0 {
		return 0, errors.New("outbox: a message needs a connector and a channel")
	}
	if c, ok := s.connector(o.Connector).(Checker); ok {
		if err := c.Check(ctx, tx, &o); err != nil {
			return 0, err
		}
	}
	payload := []byte("{}")
	if o.Payload != nil {
		var err error
		if payload, err = json.Marshal(o.Payload); err != nil {
			return 0, fmt.Errorf("outbox: payload: %w", err)
		}
	}
	now := s.now()
	var id int64
	err := tx.QueryRowContext(ctx, `INSERT INTO outbox (comment_id, issue_id, channel_id, connector, recipient, body, payload,
		state, queued_at, next_attempt_at, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $8, $8, $8) RETURNING id`,
		nullID(o.CommentID), nullID(o.IssueID), o.ChannelID, o.Connector, o.To, o.Body, string(payload), now).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("outbox: enqueue: %w", store.Err(err))
	}
	d, err := s.get(ctx, tx, id)
	if err != nil {
		return 0, err
	}
	if err := s.announce(ctx, tx, d); err != nil {
		return 0, err
	}
	tx.AfterCommit(s.Kick)
	return id, nil
}

func nullID(id int64) *int64 {
	if id == 0 {
		return nil
	}
	return &id
}

// Delivery is a row as agents see it.
type Delivery struct {
	ID        int64  `json:"id"`
	CommentID *int64 `json:"comment_id"`
	IssueID   *int64 `json:"issue_id"`
	ChannelID int64  `json:"channel_id"`
	Connector string `json:"connector"`
	To        string `json:"to"`
	State     State  `json:"state"`
	// DeliveryStatus is what the comment shows: the provider's latest status when known,
	// else queued, failed, unknown or discarded.
	DeliveryStatus string     `json:"delivery_status"`
	Attempts       int        `json:"attempts"`
	NextAttemptAt  *time.Time `json:"next_attempt_at"` // pending rows only
	ExternalID     *string    `json:"external_id"`
	ProviderStatus *string    `json:"provider_status"`
	ErrorCode      *string    `json:"error_code"`
	ErrorReason    *string    `json:"error_reason"`
	CreatedAt      time.Time  `json:"created_at"`
	UpdatedAt      time.Time  `json:"updated_at"`

	queuedAt     time.Time
	claimToken   *string
	claimedUntil *time.Time
}

const deliveryCols = `id, comment_id, issue_id, channel_id, connector, recipient, state, attempts, next_attempt_at,
	external_id, provider_status, error_code, error_reason, created_at, updated_at, queued_at, claim_token, claimed_until`

func scanDelivery(row interface{ Scan(...any) error }) (*Delivery, error) {
	var d Delivery
	var next time.Time
	if err := row.Scan(&d.ID, &d.CommentID, &d.IssueID, &d.ChannelID, &d.Connector, &d.To, &d.State, &d.Attempts, &next,
		&d.ExternalID, &d.ProviderStatus, &d.ErrorCode, &d.ErrorReason, &d.CreatedAt, &d.UpdatedAt, &d.queuedAt, &d.claimToken, &d.claimedUntil); err != nil {
		return nil, err
	}
	if d.State == Pending {
		d.NextAttemptAt = &next
	}
	d.DeliveryStatus = d.status()
	return &d, nil
}

// status is the comment's delivery_status for the row.
func (d *Delivery) status() string {
	ps := ""
	if d.ProviderStatus != nil {
		ps = *d.ProviderStatus
	}
	switch d.State {
	case Pending, Sending, Sent:
		if ps != "" {
			return ps
		}
		if d.State == Sent {
			return "sent"
		}
		return "queued"
	case Failed:
		if ps == "failed" || ps == "undelivered" {
			return ps
		}
		return "failed"
	}
	return string(d.State) // unknown, discarded
}

// ErrNotFound is returned for a missing row.
var ErrNotFound = httpx.Errorf(http.StatusNotFound, "no such delivery")

func (s *Service) get(ctx context.Context, q store.Querier, id int64) (*Delivery, error) {
	d, err := scanDelivery(q.QueryRowContext(ctx, `SELECT `+deliveryCols+` FROM outbox WHERE id = $1`, id))
	if errors.Is(store.Err(err), store.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("outbox: get %d: %w", id, err)
	}
	return d, nil
}

// Get returns one row.
func (s *Service) Get(ctx context.Context, id int64) (*Delivery, error) { return s.get(ctx, s.db, id) }

// ForIssue returns the rows of an issue's replies, oldest first.
func (s *Service) ForIssue(ctx context.Context, issueID int64) ([]*Delivery, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+deliveryCols+` FROM outbox WHERE issue_id = $1 ORDER BY id`, issueID)
	if err != nil {
		return nil, fmt.Errorf("outbox: deliveries of issue %d: %w", issueID, err)
	}
	defer rows.Close()
	list := []*Delivery{}
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			return nil, fmt.Errorf("outbox: deliveries of issue %d: %w", issueID, err)
		}
		list = append(list, d)
	}
	return list, rows.Err()
}

// announce mirrors the row on its comment (delivery_status, external_id) and appends a
// comment.delivery event on the issue's topic, in tx.
func (s *Service) announce(ctx context.Context, tx *store.Tx, d *Delivery) error {
	if d.CommentID != nil {
		if err := setComment(ctx, tx, *d.CommentID, d.DeliveryStatus, d.ExternalID); err != nil {
			return err
		}
	}
	if d.IssueID == nil {
		return nil
	}
	data := map[string]any{
		"comment_id":      d.CommentID,
		"delivery_status": d.DeliveryStatus,
		"external_id":     d.ExternalID,
		"error_code":      d.ErrorCode,
		"error_reason":    d.ErrorReason,
		"delivery":        d,
	}
	_, err := s.log.Append(ctx, tx, hub.IssueTopic(*d.IssueID), "comment.delivery", data)
	return err
}

// update runs fn on the row locked in a transaction, then saves what fn changed and
// announces it. fn returns false to leave the row alone.
func (s *Service) update(ctx context.Context, id int64, fn func(d *Delivery, now time.Time) (bool, error)) (*Delivery, error) {
	var out *Delivery
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		now := s.now()
		// A no-op write locks the row on PostgreSQL; SQLite transactions are exclusive.
		res, err := tx.ExecContext(ctx, `UPDATE outbox SET id = id WHERE id = $1`, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		d, err := s.get(ctx, tx, id)
		if err != nil {
			return err
		}
		changed, err := fn(d, now)
		if err != nil {
			return err
		}
		out = d
		if !changed {
			return nil
		}
		if err := s.save(ctx, tx, d, now); err != nil {
			return err
		}
		out, err = s.get(ctx, tx, id)
		if err != nil {
			return err
		}
		return s.announce(ctx, tx, out)
	})
	return out, err
}

// save writes a row's mutable fields.
func (s *Service) save(ctx context.Context, tx *store.Tx, d *Delivery, now time.Time) error {
	next := now
	if d.NextAttemptAt != nil {
		next = *d.NextAttemptAt
	}
	// The lease stays with a row that stays sending (a report may arrive mid-attempt).
	var claimed *time.Time
	var token *string
	if d.State == Sending {
		claimed, token = d.claimedUntil, d.claimToken
	}
	_, err := tx.ExecContext(ctx, `UPDATE outbox SET state = $1, attempts = $2, next_attempt_at = $3, external_id = $4,
		provider_status = $5, error_code = $6, error_reason = $7, claimed_until = $8, claim_token = $9, queued_at = $10,
		updated_at = $11 WHERE id = $12`,
		d.State, d.Attempts, next, d.ExternalID, d.ProviderStatus, d.ErrorCode, d.ErrorReason, claimed, token, d.queuedAt, now, d.ID)
	return err
}

// Refusals of agents' decisions.
var (
	ErrNotRetryable   = httpx.Errorf(http.StatusConflict, "only a failed message, or one whose outcome is unknown, can be sent again")
	ErrNotDiscardable = httpx.Errorf(http.StatusConflict, "this message is being sent, or is already done; it cannot be discarded")
)

// Retry sends a failed or unknown message again, now. For an unknown one this is the
// agent's decision that a duplicate is acceptable (or that it was not sent).
func (s *Service) Retry(ctx context.Context, id int64) (*Delivery, error) {
	d, err := s.update(ctx, id, func(d *Delivery, now time.Time) (bool, error) {
		if d.State != Failed && d.State != Unknown {
			return false, ErrNotRetryable
		}
		d.State, d.NextAttemptAt, d.queuedAt = Pending, &now, now
		d.ExternalID, d.ProviderStatus, d.ErrorCode, d.ErrorReason = nil, nil, nil, nil
		return true, nil
	})
	if err == nil {
		s.Kick()
	}
	return d, err
}

// Discard gives up on a message that is waiting, failed or unknown: it will not be sent
// (again).
func (s *Service) Discard(ctx context.Context, id int64) (*Delivery, error) {
	return s.update(ctx, id, func(d *Delivery, now time.Time) (bool, error) {
		switch d.State {
		case Pending, Failed, Unknown:
		default:
			return false, ErrNotDiscardable
		}
		d.State, d.NextAttemptAt = Discarded, nil
		return true, nil
	})
}

// rank orders provider statuses so a late report never moves a message backwards (Twilio
// may call back "sent" after "delivered").
func rank(status string) int {
	switch status {
	case "accepted", "scheduled", "queued":
		return 1
	case "sending":
		return 2
	case "sent":
		return 3
	case "delivered", "undelivered", "failed", "canceled":
		return 4
	case "read":
		return 5
	}
	return 3
}

// Report records a provider's delivery report for a message: by outbox id when the
// provider echoes it (0 when not), else by the provider's id. A report for the message's
// current external id, or for a row that has none yet (the answer to the send is still on
// its way, or was lost: an unknown outcome is resolved this way), updates it; an older
// status than the one recorded is ignored. It reports whether the message was found.
func (s *Service) Report(ctx context.Context, connector string, id int64, externalID, status, code, reason string) (bool, error) {
	if id == 0 {
		err := s.db.QueryRowContext(ctx, `SELECT id FROM outbox WHERE connector = $1 AND external_id = $2 ORDER BY id DESC LIMIT 1`,
			connector, externalID).Scan(&id)
		if errors.Is(store.Err(err), store.ErrNotFound) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("outbox: report for %s: %w", externalID, err)
		}
	}
	_, err := s.update(ctx, id, func(d *Delivery, now time.Time) (bool, error) {
		if d.Connector != connector {
			return false, ErrNotFound
		}
		if d.ExternalID != nil && *d.ExternalID != externalID {
			// A report for an earlier attempt's message (sent again by an agent): history.
			s.cfg.Logger.Info("outbox: report for an earlier attempt ignored", "id", d.ID, "external_id", externalID, "status", status)
			return false, nil
		}
		if d.State == Discarded {
			return false, nil
		}
		if d.ProviderStatus != nil && d.ExternalID != nil && rank(status) < rank(*d.ProviderStatus) {
			return false, nil
		}
		d.ExternalID, d.ProviderStatus = &externalID, &status
		if code != "" {
			d.ErrorCode, d.ErrorReason = &code, &reason
		}
		switch {
		case d.State == Sending || d.State == Pending:
			// The attempt's own answer is still to come; it keeps this status.
		case status == "failed" || status == "undelivered":
			d.State = Failed
		default:
			// sent, or unknown resolved by the provider's word.
			d.State = Sent
		}
		return true, nil
	})
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("outbox: report for %s: %w", externalID, err)
	}
	return true, nil
}

// newToken returns a random claim token.
func newToken() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// errNothingDue ends a claim round.
var errNothingDue = errors.New("outbox: nothing due")

// claim takes the next due row whose lane has nothing earlier in flight, for Lease.
func (s *Service) claim(ctx context.Context) (*Message, string, error) {
	lock := ""
	if s.db.Dialect() == store.Postgres {
		lock = ` FOR UPDATE OF o SKIP LOCKED`
	}
	token := newToken()
	var m Message
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		now := s.now()
		var comment, issue *int64
		var payload string
		err := tx.QueryRowContext(ctx, `UPDATE outbox SET state = 'sending', attempts = attempts + 1, claimed_until = $2,
			claim_token = $3, updated_at = $1
			WHERE id = (SELECT o.id FROM outbox o
				WHERE o.state = 'pending' AND o.next_attempt_at <= $1
				AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.channel_id = o.channel_id AND p.recipient = o.recipient
					AND p.id < o.id AND p.state IN ('pending', 'sending'))
				ORDER BY o.next_attempt_at, o.id LIMIT 1`+lock+`)
			AND state = 'pending'
			RETURNING id, comment_id, issue_id, channel_id, connector, recipient, body, payload, attempts`,
			now, now.Add(s.cfg.Lease), token).
			Scan(&m.ID, &comment, &issue, &m.ChannelID, &m.Connector, &m.To, &m.Body, &payload, &m.Attempt)
		if errors.Is(store.Err(err), store.ErrNotFound) {
			return errNothingDue
		}
		if err != nil {
			return err
		}
		if comment != nil {
			m.CommentID = *comment
		}
		if issue != nil {
			m.IssueID = *issue
		}
		m.Payload = json.RawMessage(payload)
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	return &m, token, nil
}

// reap marks rows whose lease ended while sending as unknown: their worker stopped (a
// crash, a kill) before it learned the outcome, so they are not sent again blindly.
func (s *Service) reap(ctx context.Context) error {
	var ids []int64
	rows, err := s.db.QueryContext(ctx, `SELECT id FROM outbox WHERE state = 'sending' AND claimed_until < $1`, s.now())
	if err != nil {
		return fmt.Errorf("outbox: reap: %w", err)
	}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return err
		}
		ids = append(ids, id)
	}
	if err := rows.Close(); err != nil {
		return err
	}
	for _, id := range ids {
		_, err := s.update(ctx, id, func(d *Delivery, now time.Time) (bool, error) {
			if d.State != Sending || d.claimedUntil == nil || !d.claimedUntil.Before(now) {
				return false, nil
			}
			reason := "the server sending this message stopped before the provider answered; it may or may not have been sent"
			d.State, d.ErrorCode, d.ErrorReason = Unknown, nil, &reason
			return true, nil
		})
		if err != nil {
			return err
		}
		s.outcomes.WithLabelValues("", "lease_expired").Inc()
		s.cfg.Logger.Warn("outbox: lease ended while sending; marked unknown", "id", id)
	}
	return nil
}

// backoff is the wait before attempt n+1 after n failed attempts: exponential from
// RetryBase, capped at RetryMax, with "equal jitter" (half fixed, half random) so
// retries after an outage spread out.
func (s *Service) backoff(attempts int) time.Duration {
	d := s.cfg.RetryBase
	for i := 1; i < attempts && d < s.cfg.RetryMax; i++ {
		d *= 2
	}
	d = min(d, s.cfg.RetryMax)
	half := d / 2
	return half + time.Duration(s.cfg.Jitter()*float64(half))
}

// finish records an attempt's outcome, if the row is still this worker's (its token), or
// unknown (a late answer resolves it).
func (s *Service) finish(ctx context.Context, m *Message, token string, rec *Receipt, sendErr error) error {
	var outcome string
	_, err := s.update(ctx, m.ID, func(d *Delivery, now time.Time) (bool, error) {
		mine := d.State == Sending && d.claimToken != nil && *d.claimToken == token
		if !mine && (d.State != Unknown || sendErr != nil) {
			s.cfg.Logger.Warn("outbox: attempt finished after its lease; outcome not recorded", "id", m.ID, "state", d.State, "err", sendErr)
			return false, nil
		}
		if sendErr == nil {
			outcome = "sent"
			d.State = Sent
			if rec.ExternalID != "" {
				if d.ExternalID != nil && *d.ExternalID != rec.ExternalID {
					s.cfg.Logger.Warn("outbox: report named another id", "id", m.ID, "reported", *d.ExternalID, "sent", rec.ExternalID)
				}
				d.ExternalID = &rec.ExternalID
			}
			st := rec.Status
			if st == "" {
				st = "sent"
			}
			// A report that arrived before this answer may already know more.
			if d.ProviderStatus == nil || rank(st) >= rank(*d.ProviderStatus) {
				d.ProviderStatus = &st
			}
			if ps := *d.ProviderStatus; ps == "failed" || ps == "undelivered" {
				d.State = Failed
			} else {
				d.ErrorCode, d.ErrorReason = nil, nil
			}
			return true, nil
		}
		var e *Error
		if !errors.As(sendErr, &e) {
			e = &Error{Outcome: Indeterminate, Reason: "the connector failed in an unexpected way: " + sendErr.Error(), Err: sendErr}
		}
		var code *string
		if e.Code != "" {
			code = &e.Code
		}
		reason := e.Reason
		switch e.Outcome {
		case Transient:
			wait := max(s.backoff(d.Attempts), e.RetryAfter)
			next := now.Add(wait)
			if next.Sub(d.queuedAt) > s.cfg.GiveUpAfter {
				outcome = "gave_up"
				reason = fmt.Sprintf("gave up after %d attempts over %s: %s", d.Attempts, now.Sub(d.queuedAt).Round(time.Second), e.Reason)
				d.State, d.ErrorCode, d.ErrorReason = Failed, code, &reason
				return true, nil
			}
			outcome = "retry"
			reason = fmt.Sprintf("attempt %d failed, retrying: %s", d.Attempts, e.Reason)
			d.State, d.NextAttemptAt, d.ErrorCode, d.ErrorReason = Pending, &next, code, &reason
		case Permanent:
			outcome = "failed"
			d.State, d.ErrorCode, d.ErrorReason = Failed, code, &reason
		default:
			outcome = "unknown"
			d.State, d.ErrorCode, d.ErrorReason = Unknown, code, &reason
		}
		return true, nil
	})
	if outcome != "" {
		s.outcomes.WithLabelValues(m.Connector, outcome).Inc()
	}
	return err
}
