// Package issues owns customers and their issues: intake of customer messages, statuses,
// comments (customer messages, replies, internal notes) and the activity log.
//
// Intake is one transaction: the provider's message id is recorded first (so a retried
// webhook or re-fetched mail is a no-op even when two copies race), the customer row is
// upserted (which locks it, so two messages from one customer are threaded one after the
// other), then the message is attached to an issue by the rules in DESIGN.md, shown in
// the channel's feed and published as events after commit.
package issues

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/switchboard-hq/switchboard/channels"
	"github.com/switchboard-hq/switchboard/hub"
	"github.com/switchboard-hq/switchboard/store"
)

// Status is where an issue stands.
type Status string

// The statuses.
const (
	Open       Status = "open"
	InProgress Status = "in_progress"
	Resolved   Status = "resolved"
	Closed     Status = "closed"
)

// Comment kinds.
const (
	KindCustomer = "customer"
	KindReply    = "reply"
	KindNote     = "note"
)

// Issue is a customer's request and its state.
type Issue struct {
	ID              int64      `json:"id"`
	Status          Status     `json:"status"`
	Priority        string     `json:"priority"`
	ChannelID       int64      `json:"channel_id"`
	CustomerID      int64      `json:"customer_id"`
	AssigneeID      *int64     `json:"assignee_id"`
	ResolvedBy      *int64     `json:"resolved_by"`
	Subject         string     `json:"subject"`
	LinkedIssueID   *int64     `json:"linked_issue_id"`
	CreatedAt       time.Time  `json:"created_at"`
	UpdatedAt       time.Time  `json:"updated_at"`
	FirstResponseAt *time.Time `json:"first_response_at"`
	ResolvedAt      *time.Time `json:"resolved_at"`
	ClosedAt        *time.Time `json:"closed_at"`
	SnoozedUntil    *time.Time `json:"snoozed_until"` // set while snoozed: the issue is out of the active lists

	// For display; filled from People and the customers table.
	AssigneeName   *string   `json:"assignee_name"`
	ResolvedByName *string   `json:"resolved_by_name"`
	Customer       *Customer `json:"customer,omitempty"`
}

// Customer is a person who writes to the support team.
type Customer struct {
	ID        int64     `json:"id"`
	Name      string    `json:"name"`
	Phone     *string   `json:"phone"`
	Email     *string   `json:"email"`
	CreatedAt time.Time `json:"created_at"`
}

// DisplayName is the name, else the phone, else the email.
func (c *Customer) DisplayName() string {
	switch {
	case c.Name != "":
		return c.Name
	case c.Phone != nil:
		return *c.Phone
	case c.Email != nil:
		return *c.Email
	}
	return fmt.Sprintf("customer %d", c.ID)
}

// Comment is one entry of an issue's conversation.
type Comment struct {
	ID             int64     `json:"id"`
	IssueID        int64     `json:"issue_id"`
	Kind           string    `json:"kind"`
	Body           string    `json:"body"`
	AuthorID       *int64    `json:"author_id"`
	CustomerID     *int64    `json:"customer_id"`
	ChannelID      *int64    `json:"channel_id"`
	ExternalID     *string   `json:"external_id"`
	DeliveryStatus *string   `json:"delivery_status,omitempty"`
	CreatedAt      time.Time `json:"created_at"`
	Mentions       []Mention `json:"mentions,omitempty"` // notes: the users and teams they mention
}

// Activity is one line of an issue's log.
type Activity struct {
	ID        int64           `json:"id"`
	IssueID   int64           `json:"issue_id"`
	ActorID   *int64          `json:"actor_id"`
	Action    string          `json:"action"`
	Details   json.RawMessage `json:"details"`
	CreatedAt time.Time       `json:"created_at"`
}

// People names users for display. The accounts package implements it; issues does not
// read the users table itself.
type People interface {
	Names(ctx context.Context, q store.Querier, ids []int64) (map[int64]string, error)
}

// Config configures a Service.
type Config struct {
	Now    func() time.Time // default time.Now
	People People           // optional: assignee and resolver names
	// Handles resolves @mentions in notes. Default: People, when it also implements
	// Handles (accounts.Service does); nil: mentions are not resolved.
	Handles Handles
	// ViewingInterval is the least time between two issue.viewing events of one user on
	// one issue; requests in between are dropped. Default 2 s.
	ViewingInterval time.Duration
	// Notifier hears what happens to issues, for notifications (see SetNotifier).
	Notifier Notifier
}

// Service is the issues API.
type Service struct {
	db       *store.DB
	log      *hub.Log
	channels *channels.Service
	cfg      Config

	senders senders // reply delivery, by channel kind
	viewing limiter // issue.viewing rate limit
}

// New returns a Service.
func New(db *store.DB, log *hub.Log, ch *channels.Service, cfg Config) *Service {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Handles == nil {
		cfg.Handles, _ = cfg.People.(Handles)
	}
	if cfg.ViewingInterval <= 0 {
		cfg.ViewingInterval = 2 * time.Second
	}
	return &Service{db: db, log: log, channels: ch, cfg: cfg}
}

func (s *Service) now() time.Time { return s.cfg.Now().UTC().Truncate(time.Microsecond) }

// ErrNotFound is returned for a missing issue.
var ErrNotFound = errors.New("issues: no such issue")

const issueCols = `i.id, i.status, i.priority, i.channel_id, i.customer_id, i.assignee_id, i.resolved_by, i.subject,
	i.linked_issue_id, i.created_at, i.updated_at, i.first_response_at, i.resolved_at, i.closed_at, i.snoozed_until,
	c.name, c.phone, c.email, c.created_at`

const issueFrom = ` FROM issues i JOIN customers c ON c.id = i.customer_id `

func scanIssue(row interface{ Scan(...any) error }) (*Issue, error) {
	var i Issue
	cu := &Customer{}
	err := row.Scan(&i.ID, &i.Status, &i.Priority, &i.ChannelID, &i.CustomerID, &i.AssigneeID, &i.ResolvedBy, &i.Subject,
		&i.LinkedIssueID, &i.CreatedAt, &i.UpdatedAt, &i.FirstResponseAt, &i.ResolvedAt, &i.ClosedAt, &i.SnoozedUntil,
		&cu.Name, &cu.Phone, &cu.Email, &cu.CreatedAt)
	if err != nil {
		return nil, err
	}
	cu.ID = i.CustomerID
	i.Customer = cu
	return &i, nil
}

// get reads one issue through q, with names filled.
func (s *Service) get(ctx context.Context, q store.Querier, id int64) (*Issue, error) {
	i, err := scanIssue(q.QueryRowContext(ctx, `SELECT `+issueCols+issueFrom+`WHERE i.id = $1`, id))
	if err != nil {
		if errors.Is(store.Err(err), store.ErrNotFound) {
			return nil, ErrNotFound
		}
		return nil, fmt.Errorf("issues: get %d: %w", id, err)
	}
	if err := s.name(ctx, q, []*Issue{i}); err != nil {
		return nil, err
	}
	return i, nil
}

// name fills assignee and resolver names.
func (s *Service) name(ctx context.Context, q store.Querier, list []*Issue) error {
	if s.cfg.People == nil {
		return nil
	}
	var ids []int64
	for _, i := range list {
		if i.AssigneeID != nil {
			ids = append(ids, *i.AssigneeID)
		}
		if i.ResolvedBy != nil {
			ids = append(ids, *i.ResolvedBy)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	names, err := s.cfg.People.Names(ctx, q, ids)
	if err != nil {
		return fmt.Errorf("issues: names: %w", err)
	}
	for _, i := range list {
		if i.AssigneeID != nil {
			if n, ok := names[*i.AssigneeID]; ok {
				i.AssigneeName = &n
			}
		}
		if i.ResolvedBy != nil {
			if n, ok := names[*i.ResolvedBy]; ok {
				i.ResolvedByName = &n
			}
		}
	}
	return nil
}

// Get returns an issue.
func (s *Service) Get(ctx context.Context, id int64) (*Issue, error) { return s.get(ctx, s.db, id) }

// commentCols are the columns scanComment reads, in order.
const commentCols = `id, issue_id, kind, body, author_id, customer_id, channel_id, external_id, delivery_status, created_at`

func scanComment(row interface{ Scan(...any) error }) (*Comment, error) {
	var c Comment
	if err := row.Scan(&c.ID, &c.IssueID, &c.Kind, &c.Body, &c.AuthorID, &c.CustomerID, &c.ChannelID, &c.ExternalID,
		&c.DeliveryStatus, &c.CreatedAt); err != nil {
		return nil, err
	}
	return &c, nil
}

// comments reads the comments of an issue through q that match the extra condition
// (which may use $2 onwards), oldest first.
func (s *Service) comments(ctx context.Context, q store.Querier, issueID int64, cond string, args ...any) ([]*Comment, error) {
	rows, err := q.QueryContext(ctx, `SELECT `+commentCols+` FROM comments WHERE issue_id = $1`+cond+` ORDER BY id`,
		append([]any{issueID}, args...)...)
	if err != nil {
		return nil, fmt.Errorf("issues: comments of %d: %w", issueID, err)
	}
	defer rows.Close()
	out := []*Comment{}
	for rows.Next() {
		c, err := scanComment(rows)
		if err != nil {
			return nil, fmt.Errorf("issues: comments of %d: %w", issueID, err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, s.fillMentions(ctx, q, issueID, out)
}

// Detail returns an issue's comments and activity, oldest first.
func (s *Service) Detail(ctx context.Context, id int64) ([]*Comment, []*Activity, error) {
	return s.detail(ctx, s.db, id)
}

// View is an issue with its comments and activity, all read in one snapshot, so a new
// comment never appears beside the status from before it.
func (s *Service) View(ctx context.Context, id int64) (issue *Issue, comments []*Comment, activity []*Activity, err error) {
	err = s.db.InSnapshot(ctx, func(q store.Querier) error {
		var err error
		if issue, err = s.get(ctx, q, id); err != nil {
			return err
		}
		comments, activity, err = s.detail(ctx, q, id)
		return err
	})
	return issue, comments, activity, err
}

func (s *Service) detail(ctx context.Context, q store.Querier, id int64) ([]*Comment, []*Activity, error) {
	comments, err := s.comments(ctx, q, id, "")
	if err != nil {
		return nil, nil, err
	}
	arows, err := q.QueryContext(ctx, `SELECT id, issue_id, actor_id, action, details, created_at FROM activity
		WHERE issue_id = $1 ORDER BY id`, id)
	if err != nil {
		return nil, nil, fmt.Errorf("issues: activity of %d: %w", id, err)
	}
	defer arows.Close()
	activity := []*Activity{}
	for arows.Next() {
		var a Activity
		var details string
		if err := arows.Scan(&a.ID, &a.IssueID, &a.ActorID, &a.Action, &details, &a.CreatedAt); err != nil {
			return nil, nil, fmt.Errorf("issues: activity of %d: %w", id, err)
		}
		a.Details = json.RawMessage(details)
		activity = append(activity, &a)
	}
	return comments, activity, arows.Err()
}

// Filter selects issues for List.
type Filter struct {
	Channels   []int64  // required: the channels the reader may see
	Statuses   []Status // empty: all
	Priorities []string // empty: all
	AssigneeID *int64   // with Unassigned false: assigned to this user
	Unassigned bool
	ChannelID  int64       // 0: any of Channels
	Query      string      // text in any message, or the customer's phone, email or name
	Snoozed    SnoozedList // default: snoozed issues are left out
	Before     int64       // paging: issues with id < Before
	Limit      int         // default 50, at most 200
}

// SnoozedList says what List does with issues snoozed until a time still to come.
type SnoozedList int

// The choices for Filter.Snoozed.
const (
	SnoozedExcluded SnoozedList = iota // the active lists: no snoozed issue
	SnoozedIncluded                    // snoozed issues too
	SnoozedOnly                        // only snoozed issues
)

// List returns issues newest first, and whether there are more.
func (s *Service) List(ctx context.Context, f Filter) ([]*Issue, bool, error) {
	if f.Limit <= 0 || f.Limit > 200 {
		f.Limit = 50
	}
	if len(f.Channels) == 0 {
		return []*Issue{}, false, nil
	}
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	marks := make([]string, len(f.Channels))
	for i, id := range f.Channels {
		marks[i] = arg(id)
	}
	where = append(where, "i.channel_id IN ("+strings.Join(marks, ",")+")")
	if f.ChannelID != 0 {
		where = append(where, "i.channel_id = "+arg(f.ChannelID))
	}
	if len(f.Statuses) > 0 {
		sm := make([]string, len(f.Statuses))
		for i, st := range f.Statuses {
			sm[i] = arg(string(st))
		}
		where = append(where, "i.status IN ("+strings.Join(sm, ",")+")")
	}
	if len(f.Priorities) > 0 {
		pm := make([]string, len(f.Priorities))
		for i, p := range f.Priorities {
			pm[i] = arg(p)
		}
		where = append(where, "i.priority IN ("+strings.Join(pm, ",")+")")
	}
	switch f.Snoozed {
	case SnoozedExcluded:
		where = append(where, "(i.snoozed_until IS NULL OR i.snoozed_until <= "+arg(s.now())+")")
	case SnoozedOnly:
		where = append(where, "i.snoozed_until > "+arg(s.now()))
	}
	switch {
	case f.Unassigned:
		where = append(where, "i.assignee_id IS NULL")
	case f.AssigneeID != nil:
		where = append(where, "i.assignee_id = "+arg(*f.AssigneeID))
	}
	if q := strings.TrimSpace(f.Query); q != "" {
		pat := "%" + likeEscape(strings.ToLower(q)) + "%"
		p := arg(pat)
		where = append(where, `(LOWER(c.name) LIKE `+p+` ESCAPE '\' OR LOWER(COALESCE(c.phone, '')) LIKE `+p+` ESCAPE '\'
			OR COALESCE(c.email_norm, '') LIKE `+p+` ESCAPE '\'
			OR EXISTS (SELECT 1 FROM comments m WHERE m.issue_id = i.id AND LOWER(m.body) LIKE `+p+` ESCAPE '\'))`)
	}
	if f.Before > 0 {
		where = append(where, "i.id < "+arg(f.Before))
	}
	query := `SELECT ` + issueCols + issueFrom + `WHERE ` + strings.Join(where, " AND ") +
		` ORDER BY i.id DESC LIMIT ` + arg(f.Limit+1)
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, false, fmt.Errorf("issues: list: %w", err)
	}
	defer rows.Close()
	list := []*Issue{}
	for rows.Next() {
		i, err := scanIssue(rows)
		if err != nil {
			return nil, false, fmt.Errorf("issues: list: %w", err)
		}
		list = append(list, i)
	}
	if err := rows.Err(); err != nil {
		return nil, false, err
	}
	more := len(list) > f.Limit
	if more {
		list = list[:f.Limit]
	}
	if err := s.name(ctx, s.db, list); err != nil {
		return nil, false, err
	}
	return list, more, nil
}

// likeEscape escapes LIKE's wildcards so customer text matches literally.
func likeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// Describe fills the customer and issue summaries of feed messages, and author names.
// It implements channels.Directory.
func (s *Service) Describe(ctx context.Context, q store.Querier, msgs []*channels.Message) error {
	var issueIDs, authorIDs []int64
	for _, m := range msgs {
		if m.IssueID != nil {
			issueIDs = append(issueIDs, *m.IssueID)
		}
		if m.AuthorID != nil {
			authorIDs = append(authorIDs, *m.AuthorID)
		}
	}
	byID := map[int64]*Issue{}
	for chunk := range slices.Chunk(issueIDs, 500) {
		marks := make([]string, len(chunk))
		args := make([]any, len(chunk))
		for i, id := range chunk {
			marks[i], args[i] = fmt.Sprintf("$%d", i+1), id
		}
		rows, err := q.QueryContext(ctx, `SELECT `+issueCols+issueFrom+`WHERE i.id IN (`+strings.Join(marks, ",")+`)`, args...)
		if err != nil {
			return fmt.Errorf("issues: describe: %w", err)
		}
		var list []*Issue
		for rows.Next() {
			i, err := scanIssue(rows)
			if err != nil {
				rows.Close()
				return fmt.Errorf("issues: describe: %w", err)
			}
			list = append(list, i)
			byID[i.ID] = i
		}
		if err := rows.Close(); err != nil {
			return err
		}
		if err := s.name(ctx, q, list); err != nil {
			return err
		}
	}
	var names map[int64]string
	if len(authorIDs) > 0 && s.cfg.People != nil {
		var err error
		if names, err = s.cfg.People.Names(ctx, q, authorIDs); err != nil {
			return fmt.Errorf("issues: describe: %w", err)
		}
	}
	for _, m := range msgs {
		if m.IssueID != nil {
			if i := byID[*m.IssueID]; i != nil {
				m.Issue = i
				if m.CustomerID != nil && *m.CustomerID == i.CustomerID {
					m.Customer = personOf(i.Customer)
				}
			}
		}
		if m.AuthorID != nil {
			m.Author = &channels.Person{ID: *m.AuthorID, Name: names[*m.AuthorID]}
		}
	}
	return nil
}

func personOf(c *Customer) *channels.Person {
	p := &channels.Person{ID: c.ID, Name: c.DisplayName()}
	if c.Phone != nil {
		p.Phone = *c.Phone
	}
	if c.Email != nil {
		p.Email = *c.Email
	}
	return p
}
