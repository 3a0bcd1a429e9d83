package issues

// SLAs: per-channel targets for the first response and the resolution, the clocks that
// measure an issue against them, and the Engine that warns and alerts when they run out.
//
// How the clocks run (the rules in DESIGN.md, made precise):
//
//   - An issue is held to the policy of its channel in force when it opened. The Engine
//     stamps each new issue once, copying the targets into the issue's row (so changing a
//     policy later does not move the due times of issues already open); issues opened
//     before the channel had a policy have no SLA.
//   - Both clocks start when the issue opens (created_at). The first-response clock stops
//     at first_response_at (the first reply, or "customer contacted"); the resolution clock
//     runs while the issue is open or in progress.
//   - Both clocks are paused while the issue is resolved or closed: a customer who reopens
//     an issue resumes its clocks where they stopped. When the channel's policy says so,
//     they also pause while the issue waits on the customer: from an agent's reply that
//     follows the customer's latest message (replies that failed to deliver do not count)
//     until the customer's next message. Snoozing does not pause them: the customer is
//     still waiting.
//   - Due time = the moment the running (unpaused) time reaches the target; the warning
//     point = the moment it reaches warn_percent of it. Waiting periods are computed from
//     the comments every time (exact, whatever the Engine missed while no node ran it);
//     resolved periods are noted by the Engine as it sees status changes (exact start from
//     resolved_at/closed_at; the end is the customer's message that reopened the issue, or
//     the tick that saw an agent reopen it).
//   - A warning fires once per clock, a breach once per clock (flags set in the firing
//     transaction with a conditional update, so even two engines racing fire once). A
//     breach found after its clock already stopped (the reply came late, between two
//     ticks) is recorded, with an activity entry, but alerts nobody: there is nothing left
//     to do. When the warning point and the due time pass in the same tick, only the breach
//     fires.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/switchboard-hq/switchboard/channels"
	"github.com/switchboard-hq/switchboard/hub"
	"github.com/switchboard-hq/switchboard/internal/httpx"
	"github.com/switchboard-hq/switchboard/internal/lease"
	"github.com/switchboard-hq/switchboard/notify"
	"github.com/switchboard-hq/switchboard/store"
)

// The two SLA clocks, as named in events and the API.
const (
	SLAFirstResponse = "first_response"
	SLAResolution    = "resolution"
)

// Event types the Engine emits.
const (
	EventSLAWarning  = "sla.warning"
	EventSLABreached = "sla_breached"
)

// Bounds and defaults of SLA settings, in minutes and percent.
const (
	MinFirstResponseMinutes = 30           // 0.5 h
	MaxFirstResponseMinutes = 48 * 60      // 48 h
	MinResolutionMinutes    = 30           // 0.5 h
	MaxResolutionMinutes    = 90 * 24 * 60 // 90 days
	DefaultWarnPercent      = 80
	MinWarnPercent          = 1
	MaxWarnPercent          = 99
	DefaultAutoCloseMinutes = 4 * 24 * 60   // 4 days
	MinAutoCloseMinutes     = 60            // 1 h
	MaxAutoCloseMinutes     = 365 * 24 * 60 // 1 year
)

// SLAPolicy is a channel's SLA targets.
type SLAPolicy struct {
	ChannelID            int64     `json:"channel_id"`
	FirstResponseMinutes int       `json:"first_response_minutes"`
	ResolutionMinutes    int       `json:"resolution_minutes"`
	PauseWhileWaiting    bool      `json:"pause_while_waiting"`
	WarnPercent          int       `json:"warn_percent"`
	CreatedAt            time.Time `json:"created_at"` // issues opened from here on are held to the policy
	UpdatedAt            time.Time `json:"updated_at"`
}

// ErrNoSLAPolicy: the channel has no SLA policy.
var ErrNoSLAPolicy = errors.New("issues: the channel has no SLA policy")

// Validate checks the policy's bounds. Its errors are 400s naming the field and bound.
// A zero WarnPercent means the default.
func (p *SLAPolicy) Validate() error {
	if p.WarnPercent == 0 {
		p.WarnPercent = DefaultWarnPercent
	}
	switch {
	case p.FirstResponseMinutes < MinFirstResponseMinutes || p.FirstResponseMinutes > MaxFirstResponseMinutes:
		return httpx.Errorf(http.StatusBadRequest, "first_response_minutes must be between %d (0.5 h) and %d (48 h)",
			MinFirstResponseMinutes, MaxFirstResponseMinutes)
	case p.ResolutionMinutes < MinResolutionMinutes || p.ResolutionMinutes > MaxResolutionMinutes:
		return httpx.Errorf(http.StatusBadRequest, "resolution_minutes must be between %d (0.5 h) and %d (90 days)",
			MinResolutionMinutes, MaxResolutionMinutes)
	case p.ResolutionMinutes < p.FirstResponseMinutes:
		return httpx.Errorf(http.StatusBadRequest, "resolution_minutes must be at least first_response_minutes")
	case p.WarnPercent < MinWarnPercent || p.WarnPercent > MaxWarnPercent:
		return httpx.Errorf(http.StatusBadRequest, "warn_percent must be between %d and %d", MinWarnPercent, MaxWarnPercent)
	}
	return nil
}

const policyCols = `channel_id, first_response_minutes, resolution_minutes, pause_while_waiting, warn_percent, created_at, updated_at`

func scanPolicy(row interface{ Scan(...any) error }) (*SLAPolicy, error) {
	var p SLAPolicy
	err := row.Scan(&p.ChannelID, &p.FirstResponseMinutes, &p.ResolutionMinutes, &p.PauseWhileWaiting, &p.WarnPercent,
		&p.CreatedAt, &p.UpdatedAt)
	return &p, err
}

// SLAPolicy returns a channel's policy, or ErrNoSLAPolicy.
func (s *Service) SLAPolicy(ctx context.Context, channelID int64) (*SLAPolicy, error) {
	p, err := scanPolicy(s.db.QueryRowContext(ctx, `SELECT `+policyCols+` FROM sla_policies WHERE channel_id = $1`, channelID))
	if errors.Is(store.Err(err), store.ErrNotFound) {
		return nil, ErrNoSLAPolicy
	}
	if err != nil {
		return nil, fmt.Errorf("issues: sla policy of channel %d: %w", channelID, err)
	}
	return p, nil
}

// slaPolicies returns every policy by channel.
func (s *Service) slaPolicies(ctx context.Context) (map[int64]*SLAPolicy, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+policyCols+` FROM sla_policies`)
	if err != nil {
		return nil, fmt.Errorf("issues: sla policies: %w", err)
	}
	defer rows.Close()
	out := map[int64]*SLAPolicy{}
	for rows.Next() {
		p, err := scanPolicy(rows)
		if err != nil {
			return nil, fmt.Errorf("issues: sla policies: %w", err)
		}
		out[p.ChannelID] = p
	}
	return out, rows.Err()
}

// SetSLAPolicy validates and stores a channel's policy (creating or replacing it). It
// applies to issues opened after the channel first got a policy; issues already stamped
// keep the targets they opened under.
func (s *Service) SetSLAPolicy(ctx context.Context, p SLAPolicy) (*SLAPolicy, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	var out *SLAPolicy
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		now := s.now()
		var err error
		out, err = scanPolicy(tx.QueryRowContext(ctx, `INSERT INTO sla_policies
			(channel_id, first_response_minutes, resolution_minutes, pause_while_waiting, warn_percent, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $6)
			ON CONFLICT (channel_id) DO UPDATE SET first_response_minutes = excluded.first_response_minutes,
				resolution_minutes = excluded.resolution_minutes, pause_while_waiting = excluded.pause_while_waiting,
				warn_percent = excluded.warn_percent, updated_at = excluded.updated_at
			RETURNING `+policyCols, p.ChannelID, p.FirstResponseMinutes, p.ResolutionMinutes, p.PauseWhileWaiting, p.WarnPercent, now))
		return store.Err(err)
	})
	if errors.Is(err, store.ErrForeignKey) {
		return nil, channels.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("issues: set sla policy of channel %d: %w", p.ChannelID, err)
	}
	return out, nil
}

// DeleteSLAPolicy removes a channel's policy: issues opened from now on have no SLA;
// issues already stamped keep theirs. It answers ErrNoSLAPolicy when there was none.
func (s *Service) DeleteSLAPolicy(ctx context.Context, channelID int64) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM sla_policies WHERE channel_id = $1`, channelID)
	if err != nil {
		return fmt.Errorf("issues: delete sla policy of channel %d: %w", channelID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNoSLAPolicy
	}
	return nil
}

// SLASettings are the organisation's SLA and auto-close settings.
type SLASettings struct {
	// AlertChannelID is the channel breach alerts are posted into; nil: none are posted
	// (the events still go out).
	AlertChannelID *int64 `json:"alert_channel_id"`
	// AutoCloseMinutes is how long a resolved issue stays resolved before it closes by
	// itself; 0 turns auto-close off. Default 4 days.
	AutoCloseMinutes int        `json:"auto_close_minutes"`
	UpdatedAt        *time.Time `json:"updated_at"` // nil: never changed, the defaults
}

// SLASettings returns the settings, or the defaults when nobody has changed them.
func (s *Service) SLASettings(ctx context.Context) (*SLASettings, error) {
	out := &SLASettings{AutoCloseMinutes: DefaultAutoCloseMinutes}
	var updated time.Time
	err := s.db.QueryRowContext(ctx, `SELECT alert_channel_id, auto_close_minutes, updated_at FROM sla_settings WHERE id = 1`).
		Scan(&out.AlertChannelID, &out.AutoCloseMinutes, &updated)
	switch {
	case errors.Is(store.Err(err), store.ErrNotFound):
		return out, nil
	case err != nil:
		return nil, fmt.Errorf("issues: sla settings: %w", err)
	}
	out.UpdatedAt = &updated
	return out, nil
}

// SetSLASettings validates and stores the settings. A missing alert channel is
// channels.ErrNotFound.
func (s *Service) SetSLASettings(ctx context.Context, in SLASettings) (*SLASettings, error) {
	if in.AutoCloseMinutes != 0 && (in.AutoCloseMinutes < MinAutoCloseMinutes || in.AutoCloseMinutes > MaxAutoCloseMinutes) {
		return nil, httpx.Errorf(http.StatusBadRequest, "auto_close_minutes must be 0 (never) or between %d (1 h) and %d (365 days)",
			MinAutoCloseMinutes, MaxAutoCloseMinutes)
	}
	now := s.now()
	_, err := s.db.ExecContext(ctx, `INSERT INTO sla_settings (id, alert_channel_id, auto_close_minutes, updated_at) VALUES (1, $1, $2, $3)
		ON CONFLICT (id) DO UPDATE SET alert_channel_id = excluded.alert_channel_id,
			auto_close_minutes = excluded.auto_close_minutes, updated_at = excluded.updated_at`,
		in.AlertChannelID, in.AutoCloseMinutes, now)
	if errors.Is(err, store.ErrForeignKey) {
		return nil, channels.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("issues: set sla settings: %w", err)
	}
	return s.SLASettings(ctx)
}

// period is a stretch of time, [Start, End].
type period struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

// mergePeriods clips ps to [from, to], drops what is empty, sorts and joins overlaps.
func mergePeriods(ps []period, from, to time.Time) []period {
	var out []period
	for _, p := range ps {
		if p.Start.Before(from) {
			p.Start = from
		}
		if p.End.After(to) {
			p.End = to
		}
		if p.End.After(p.Start) {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b period) int { return a.Start.Compare(b.Start) })
	merged := out[:0]
	for _, p := range out {
		if n := len(merged); n > 0 && !p.Start.After(merged[n-1].End) {
			if p.End.After(merged[n-1].End) {
				merged[n-1].End = p.End
			}
			continue
		}
		merged = append(merged, p)
	}
	return merged
}

// reach is the moment a clock started at start has run for d, not running during paused
// (merged, sorted, none before start). Past the last pause it runs on uninterrupted.
func reach(start time.Time, d time.Duration, paused []period) time.Time {
	t, left := start, d
	for _, p := range paused {
		if gap := p.Start.Sub(t); gap > 0 {
			if gap >= left {
				return t.Add(left)
			}
			left -= gap
		}
		if p.End.After(t) {
			t = p.End
		}
	}
	return t.Add(left)
}

// runningBetween is how long a clock ran in [start, end], not running during paused
// (merged, sorted).
func runningBetween(start, end time.Time, paused []period) time.Duration {
	if !end.After(start) {
		return 0
	}
	d := end.Sub(start)
	for _, p := range mergePeriods(paused, start, end) {
		d -= p.End.Sub(p.Start)
	}
	return d
}

// commentMark is what the clocks need of a comment.
type commentMark struct {
	ID     int64
	Kind   string
	Failed bool // a reply that could not be delivered
	At     time.Time
}

// waitingPeriods are the stretches in which the issue waited on the customer: from an
// agent's (delivered) reply that follows the customer's latest message until the
// customer's next message, or until now. cs is in id order. It also reports whether the
// issue waits now.
func waitingPeriods(cs []commentMark, now time.Time) ([]period, bool) {
	var out []period
	var since *time.Time
	for _, c := range cs {
		switch {
		case c.Kind == KindReply && !c.Failed && since == nil:
			at := c.At
			since = &at
		case c.Kind == KindCustomer && since != nil:
			out = append(out, period{*since, c.At})
			since = nil
		}
	}
	if since != nil {
		out = append(out, period{*since, now})
	}
	return out, since != nil
}

// firstCustomerAfter is the time of the customer's first message after t, or nil.
func firstCustomerAfter(cs []commentMark, t time.Time) *time.Time {
	var first *time.Time
	for _, c := range cs {
		if c.Kind == KindCustomer && c.At.After(t) && (first == nil || c.At.Before(*first)) {
			at := c.At
			first = &at
		}
	}
	return first
}

// slaRow is an issue's SLA state as stored.
type slaRow struct {
	ID                int64
	ChannelID         int64
	Status            Status
	AssigneeID        *int64
	CreatedAt         time.Time
	FirstResponseAt   *time.Time
	ResolvedAt        *time.Time
	ClosedAt          *time.Time
	Stamped           bool   // the engine has looked at it (Minutes are 0 when it has no SLA)
	Minutes           [2]int // by clock: first response, resolution
	WarnPercent       int
	PauseWhileWaiting bool
	Periods           []period // finished resolved periods
	ResolvedSince     *time.Time
	Warned, Breached  [2]*time.Time
}

var slaKinds = [2]string{SLAFirstResponse, SLAResolution}

const slaRowCols = `id, channel_id, status, assignee_id, created_at, first_response_at, resolved_at, closed_at,
	sla_first_response_minutes, COALESCE(sla_resolution_minutes, 0), COALESCE(sla_warn_percent, 0),
	sla_pause_while_waiting, sla_resolved_periods, sla_resolved_since,
	sla_first_response_warned_at, sla_resolution_warned_at, sla_first_response_breached_at, sla_resolution_breached_at`

func (s *Service) readSLARow(ctx context.Context, q store.Querier, id int64) (*slaRow, error) {
	var r slaRow
	var periods string
	var first *int
	err := q.QueryRowContext(ctx, `SELECT `+slaRowCols+` FROM issues WHERE id = $1`, id).Scan(
		&r.ID, &r.ChannelID, &r.Status, &r.AssigneeID, &r.CreatedAt, &r.FirstResponseAt, &r.ResolvedAt, &r.ClosedAt,
		&first, &r.Minutes[1], &r.WarnPercent, &r.PauseWhileWaiting, &periods, &r.ResolvedSince,
		&r.Warned[0], &r.Warned[1], &r.Breached[0], &r.Breached[1])
	if errors.Is(store.Err(err), store.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("issues: sla state of %d: %w", id, err)
	}
	if first != nil {
		r.Stamped, r.Minutes[0] = true, *first
	}
	if err := json.Unmarshal([]byte(periods), &r.Periods); err != nil {
		return nil, fmt.Errorf("issues: sla periods of %d: %w", id, err)
	}
	return &r, nil
}

func (s *Service) commentMarks(ctx context.Context, q store.Querier, issueID int64) ([]commentMark, error) {
	rows, err := q.QueryContext(ctx, `SELECT id, kind, COALESCE(delivery_status, ''), created_at FROM comments
		WHERE issue_id = $1 AND kind IN ('customer', 'reply') ORDER BY id`, issueID)
	if err != nil {
		return nil, fmt.Errorf("issues: comments of %d: %w", issueID, err)
	}
	defer rows.Close()
	var out []commentMark
	for rows.Next() {
		var c commentMark
		var status string
		if err := rows.Scan(&c.ID, &c.Kind, &status, &c.At); err != nil {
			return nil, fmt.Errorf("issues: comments of %d: %w", issueID, err)
		}
		c.Failed = status == "failed" || status == "undelivered"
		out = append(out, c)
	}
	return out, rows.Err()
}

// clockState is one clock of an issue at a moment.
type clockState struct {
	Kind       string
	Target     time.Duration
	DueAt      time.Time  // when the running time reaches the target (when paused: if it resumed now)
	WarnAt     time.Time  // when it reaches the warning point
	StoppedAt  *time.Time // the clock no longer runs to a breach: first response made, or the issue resolved
	Paused     bool       // not running now
	Elapsed    time.Duration
	WarnedAt   *time.Time
	BreachedAt *time.Time
}

// assessment is an issue's SLA clocks at a moment, and the resolved-period bookkeeping
// to store.
type assessment struct {
	Clocks        [2]clockState
	Waiting       bool // waiting on the customer now (whether or not the policy pauses for it)
	Resolved      bool
	PausedTotal   time.Duration // paused time since the issue opened
	Periods       []period
	ResolvedSince *time.Time
}

// assess computes an issue's clocks at now from its stored state and its comments. It is
// pure: the Engine stores what it says, and the issue SLA view shows it.
func assess(r *slaRow, cs []commentMark, now time.Time) assessment {
	a := assessment{Periods: slices.Clone(r.Periods), ResolvedSince: r.ResolvedSince}
	a.Resolved = r.Status == Resolved || r.Status == Closed
	// Resolved-period bookkeeping: close a period the issue left, open one it entered.
	if a.ResolvedSince != nil {
		since := *a.ResolvedSince
		switch {
		case !a.Resolved:
			// Reopened: by the customer's message, or (if none) by an agent, seen now.
			end := now
			if c := firstCustomerAfter(cs, since); c != nil && c.Before(now) {
				end = *c
			}
			a.Periods = append(a.Periods, period{since, end})
			a.ResolvedSince = nil
		case r.ResolvedAt != nil && r.ResolvedAt.After(since):
			// Reopened and resolved again between two looks.
			end := *r.ResolvedAt
			if c := firstCustomerAfter(cs, since); c != nil && c.Before(end) {
				end = *c
			}
			a.Periods = append(a.Periods, period{since, end})
			at := *r.ResolvedAt
			a.ResolvedSince = &at
		}
	}
	if a.Resolved && a.ResolvedSince == nil {
		at := now
		switch {
		case r.ResolvedAt != nil:
			at = *r.ResolvedAt
		case r.ClosedAt != nil:
			at = *r.ClosedAt
		}
		if at.After(now) {
			at = now
		}
		a.ResolvedSince = &at
	}

	paused := slices.Clone(a.Periods)
	if a.ResolvedSince != nil {
		paused = append(paused, period{*a.ResolvedSince, now})
	}
	waiting, waitingNow := waitingPeriods(cs, now)
	a.Waiting = waitingNow
	if r.PauseWhileWaiting {
		paused = append(paused, waiting...)
	}
	paused = mergePeriods(paused, r.CreatedAt, now)
	for _, p := range paused {
		a.PausedTotal += p.End.Sub(p.Start)
	}
	pausedNow := a.ResolvedSince != nil || (r.PauseWhileWaiting && waitingNow)

	for k := range slaKinds {
		target := time.Duration(r.Minutes[k]) * time.Minute
		c := clockState{
			Kind:       slaKinds[k],
			Target:     target,
			DueAt:      reach(r.CreatedAt, target, paused),
			WarnAt:     reach(r.CreatedAt, target*time.Duration(r.WarnPercent)/100, paused),
			WarnedAt:   r.Warned[k],
			BreachedAt: r.Breached[k],
		}
		if k == 0 && r.FirstResponseAt != nil {
			c.StoppedAt = r.FirstResponseAt
		} else if a.Resolved {
			c.StoppedAt = a.ResolvedSince
		}
		end := now
		if c.StoppedAt != nil && c.StoppedAt.Before(now) {
			end = *c.StoppedAt
		}
		c.Elapsed = runningBetween(r.CreatedAt, end, paused)
		c.Paused = c.StoppedAt == nil && pausedNow
		a.Clocks[k] = c
	}
	return a
}

// EngineConfig configures an Engine. The zero value works for one node.
type EngineConfig struct {
	// Lease makes the Engine work only while it holds the lease; with N nodes each has its
	// own handle on the same lease name (server uses "sla"). Nil: always work (one node).
	Lease *lease.Lease
	// Interval between ticks in Run. Default 10 s.
	Interval time.Duration
	// Now is the clock of Run. Default: the Service's clock.
	Now func() time.Time
	// Batch bounds the issues each step of one tick handles; the rest wait for the next
	// tick. Default 500.
	Batch int
	// Unsnooze wakes snoozed issues whose time has come, each tick. Default: the
	// Service's Unsnooze.
	Unsnooze func(ctx context.Context, now time.Time) (int, error)
	// Logger; default discards.
	Logger *slog.Logger
}

// Engine runs the issue timers: SLA warnings and breaches, auto-close of resolved issues
// and snooze wake-ups. Everything it knows is in the database, so it survives restarts and
// can move between nodes; with a Lease only the holder works.
type Engine struct {
	svc *Service
	cfg EngineConfig
}

// NewEngine returns an Engine over s.
func NewEngine(s *Service, cfg EngineConfig) *Engine {
	if cfg.Interval <= 0 {
		cfg.Interval = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = s.cfg.Now
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 500
	}
	if cfg.Unsnooze == nil {
		cfg.Unsnooze = s.Unsnooze
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Engine{svc: s, cfg: cfg}
}

// TickReport says what one tick did.
type TickReport struct {
	Leader    bool // this engine held the lease and worked
	Stamped   int  // new issues given their channel's SLA
	Warned    int  // warnings fired
	Breached  int  // breaches fired (alerted)
	Closed    int  // resolved issues auto-closed
	Unsnoozed int  // snoozed issues woken
}

// Tick does one round of work as of now: renew (or take) the lease, stamp new issues,
// fire due warnings and breaches, auto-close, wake snoozed issues. Without the lease it
// does nothing and reports Leader false. Tests call it with a fake clock; Run calls it
// every Interval. Errors of single issues do not stop the others; they are joined.
func (e *Engine) Tick(ctx context.Context, now time.Time) (TickReport, error) {
	now = now.UTC().Truncate(time.Microsecond)
	var rep TickReport
	if e.cfg.Lease != nil {
		ok, err := e.cfg.Lease.Acquire(ctx, now)
		if err != nil || !ok {
			return rep, err
		}
	}
	rep.Leader = true
	settings, err := e.svc.SLASettings(ctx)
	if err != nil {
		return rep, err
	}
	var errs []error
	if rep.Stamped, err = e.stamp(ctx, now); err != nil {
		errs = append(errs, err)
	}
	if rep.Warned, rep.Breached, err = e.check(ctx, now, settings); err != nil {
		errs = append(errs, err)
	}
	if rep.Closed, err = e.autoClose(ctx, now, settings); err != nil {
		errs = append(errs, err)
	}
	if rep.Unsnoozed, err = e.cfg.Unsnooze(ctx, now); err != nil {
		errs = append(errs, err)
	}
	return rep, errors.Join(errs...)
}

// Run ticks every Interval until ctx ends, then releases the lease so another node can
// take over at once.
func (e *Engine) Run(ctx context.Context) {
	t := time.NewTicker(e.cfg.Interval)
	defer t.Stop()
	for {
		rep, err := e.Tick(ctx, e.cfg.Now())
		switch {
		case err != nil && ctx.Err() == nil:
			e.cfg.Logger.Warn("issue timers: tick failed", "err", err)
		case rep.Warned+rep.Breached+rep.Closed+rep.Unsnoozed > 0:
			e.cfg.Logger.Info("issue timers", "warned", rep.Warned, "breached", rep.Breached, "closed", rep.Closed,
				"unsnoozed", rep.Unsnoozed)
		}
		select {
		case <-ctx.Done():
			if e.cfg.Lease != nil {
				rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				if err := e.cfg.Lease.Release(rctx); err != nil {
					e.cfg.Logger.Warn("issue timers: releasing the lease failed", "err", err)
				}
				cancel()
			}
			return
		case <-t.C:
		}
	}
}

// ids runs a query of issue ids.
func (e *Engine) ids(ctx context.Context, query string, args ...any) ([]int64, error) {
	rows, err := e.svc.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// stamp gives each issue not looked at yet its channel's targets, or 0 (no SLA) when the
// channel had no policy when the issue opened. Due times start as created_at + target;
// the issue is checked at once.
func (e *Engine) stamp(ctx context.Context, now time.Time) (int, error) {
	type fresh struct {
		id, channelID int64
		created       time.Time
	}
	rows, err := e.svc.db.QueryContext(ctx, `SELECT id, channel_id, created_at FROM issues
		WHERE sla_first_response_minutes IS NULL ORDER BY id LIMIT $1`, e.cfg.Batch)
	if err != nil {
		return 0, fmt.Errorf("issues: sla: unstamped issues: %w", err)
	}
	var list []fresh
	for rows.Next() {
		var f fresh
		if err := rows.Scan(&f.id, &f.channelID, &f.created); err != nil {
			rows.Close()
			return 0, fmt.Errorf("issues: sla: unstamped issues: %w", err)
		}
		list = append(list, f)
	}
	if err := rows.Close(); err != nil {
		return 0, err
	}
	if len(list) == 0 {
		return 0, nil
	}
	policies, err := e.svc.slaPolicies(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	err = e.svc.db.InTx(ctx, func(tx *store.Tx) error {
		n = 0
		for _, f := range list {
			p := policies[f.channelID]
			if p == nil || f.created.Before(p.CreatedAt) {
				if _, err := tx.ExecContext(ctx, `UPDATE issues SET sla_first_response_minutes = 0
					WHERE id = $1 AND sla_first_response_minutes IS NULL`, f.id); err != nil {
					return err
				}
				continue
			}
			res, err := tx.ExecContext(ctx, `UPDATE issues SET sla_first_response_minutes = $1, sla_resolution_minutes = $2,
				sla_warn_percent = $3, sla_pause_while_waiting = $4, sla_first_response_due = $5, sla_resolution_due = $6,
				sla_next_check_at = $7
				WHERE id = $8 AND sla_first_response_minutes IS NULL`,
				p.FirstResponseMinutes, p.ResolutionMinutes, p.WarnPercent, p.PauseWhileWaiting,
				f.created.Add(time.Duration(p.FirstResponseMinutes)*time.Minute),
				f.created.Add(time.Duration(p.ResolutionMinutes)*time.Minute), now, f.id)
			if err != nil {
				return err
			}
			if k, _ := res.RowsAffected(); k > 0 {
				n++
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("issues: sla: stamp: %w", err)
	}
	return n, nil
}

// check evaluates every issue whose SLA may need something now: its next check time has
// come, or it was resolved or reopened since the engine last looked.
func (e *Engine) check(ctx context.Context, now time.Time, settings *SLASettings) (warned, breached int, err error) {
	seen := map[int64]bool{}
	var due []int64
	for _, q := range []struct {
		query string
		args  []any
	}{
		{`SELECT id FROM issues WHERE sla_next_check_at IS NOT NULL AND sla_next_check_at <= $1 ORDER BY sla_next_check_at LIMIT $2`,
			[]any{now, e.cfg.Batch}},
		{`SELECT id FROM issues WHERE sla_first_response_minutes > 0 AND sla_resolved_since IS NULL
			AND status IN ('resolved', 'closed') ORDER BY id LIMIT $1`, []any{e.cfg.Batch}},
		{`SELECT id FROM issues WHERE status IN ('open', 'in_progress') AND sla_resolved_since IS NOT NULL
			ORDER BY id LIMIT $1`, []any{e.cfg.Batch}},
	} {
		ids, err := e.ids(ctx, q.query, q.args...)
		if err != nil {
			return 0, 0, fmt.Errorf("issues: sla: issues to check: %w", err)
		}
		for _, id := range ids {
			if !seen[id] {
				seen[id] = true
				due = append(due, id)
			}
		}
	}
	var errs []error
	for _, id := range due {
		w, b, err := e.evaluate(ctx, id, now, settings)
		if err != nil {
			errs = append(errs, fmt.Errorf("issues: sla: issue %d: %w", id, err))
			continue
		}
		warned += w
		breached += b
	}
	return warned, breached, errors.Join(errs...)
}

// evaluate brings one issue's SLA up to now in one transaction: bookkeeping, warnings,
// breaches (each at most once: the flag is set by a conditional update in the same
// transaction as its events), and the time of its next check.
func (e *Engine) evaluate(ctx context.Context, id int64, now time.Time, settings *SLASettings) (warned, breached int, err error) {
	s := e.svc
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		warned, breached = 0, 0
		// Lock the row (a no-op write on PostgreSQL; SQLite transactions are exclusive),
		// so the state read below stays current until commit.
		if _, err := tx.ExecContext(ctx, `UPDATE issues SET sla_next_check_at = sla_next_check_at WHERE id = $1`, id); err != nil {
			return err
		}
		r, err := s.readSLARow(ctx, tx, id)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if r.Minutes[0] <= 0 {
			return nil // no SLA
		}
		cs, err := s.commentMarks(ctx, tx, id)
		if err != nil {
			return err
		}
		a := assess(r, cs, now)
		var next *time.Time
		for k := range a.Clocks {
			c := &a.Clocks[k]
			if c.BreachedAt != nil {
				continue
			}
			switch {
			case c.StoppedAt != nil && c.DueAt.Before(*c.StoppedAt):
				// Breached before the clock stopped, between two looks: on record, no alarm.
				if err := e.breach(ctx, tx, r, c, false, now, settings); err != nil {
					return err
				}
			case c.StoppedAt != nil:
			case !c.DueAt.After(now):
				if err := e.breach(ctx, tx, r, c, true, now, settings); err != nil {
					return err
				}
				breached++
			case c.WarnedAt == nil && !c.WarnAt.After(now):
				if err := e.warn(ctx, tx, r, c, now); err != nil {
					return err
				}
				c.WarnedAt = &now
				warned++
				fallthrough
			default:
				at := c.DueAt
				if c.WarnedAt == nil {
					at = c.WarnAt
				}
				if !a.Resolved && (next == nil || at.Before(*next)) {
					next = &at
				}
			}
		}
		periods, err := json.Marshal(a.Periods)
		if err != nil {
			return err
		}
		if a.Periods == nil {
			periods = []byte("[]")
		}
		_, err = tx.ExecContext(ctx, `UPDATE issues SET sla_first_response_due = $1, sla_resolution_due = $2,
			sla_paused_seconds = $3, sla_resolved_periods = $4, sla_resolved_since = $5, sla_next_check_at = $6 WHERE id = $7`,
			a.Clocks[0].DueAt, a.Clocks[1].DueAt, int64(a.PausedTotal/time.Second), string(periods), a.ResolvedSince, next, id)
		return err
	})
	return warned, breached, err
}

// slaEventData is what sla.warning and sla_breached carry: enough for the notification
// router (who, which issue, which channel) and for a pop-up (the issue).
func slaEventData(issue *Issue, c *clockState) map[string]any {
	return map[string]any{
		"issue_id":    issue.ID,
		"kind":        c.Kind,
		"assignee_id": issue.AssigneeID,
		"channel_id":  issue.ChannelID,
		"due_at":      c.DueAt,
		"issue":       issue,
	}
}

// notify appends an SLA event on the issue's topic and on its assignee's private topic
// or, when unassigned, on its channel's topic (whose members the router notifies).
func (e *Engine) notify(ctx context.Context, tx *store.Tx, issue *Issue, typ string, data map[string]any) error {
	topics := []hub.Topic{hub.IssueTopic(issue.ID)}
	if issue.AssigneeID != nil {
		topics = append(topics, hub.UserTopic(*issue.AssigneeID))
	} else {
		topics = append(topics, hub.ChannelTopic(issue.ChannelID))
	}
	for _, t := range topics {
		if _, err := e.svc.log.Append(ctx, tx, t, typ, data); err != nil {
			return err
		}
	}
	return nil
}

func (e *Engine) warn(ctx context.Context, tx *store.Tx, r *slaRow, c *clockState, now time.Time) error {
	res, err := tx.ExecContext(ctx, `UPDATE issues SET sla_`+c.Kind+`_warned_at = $1 WHERE id = $2 AND sla_`+c.Kind+`_warned_at IS NULL`,
		now, r.ID)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil
	}
	issue, err := e.svc.get(ctx, tx, r.ID)
	if err != nil {
		return err
	}
	data := slaEventData(issue, c)
	data["warn_at"] = c.WarnAt
	return e.notify(ctx, tx, issue, EventSLAWarning, data)
}

// breach records a breach at its due time; loud, it also posts the alert and emits
// sla_breached.
func (e *Engine) breach(ctx context.Context, tx *store.Tx, r *slaRow, c *clockState, loud bool, now time.Time, settings *SLASettings) error {
	res, err := tx.ExecContext(ctx, `UPDATE issues SET sla_`+c.Kind+`_breached_at = $1,
		sla_`+c.Kind+`_warned_at = COALESCE(sla_`+c.Kind+`_warned_at, $2) WHERE id = $3 AND sla_`+c.Kind+`_breached_at IS NULL`,
		c.DueAt, now, r.ID)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil
	}
	details := map[string]any{"kind": c.Kind, "due_at": c.DueAt, "target_minutes": int(c.Target / time.Minute)}
	if !loud {
		details["noticed_after_stop"] = true
	}
	if err := e.svc.addActivity(ctx, tx, r.ID, nil, "sla_breached", details, now); err != nil {
		return err
	}
	if !loud {
		return nil
	}
	issue, err := e.svc.get(ctx, tx, r.ID)
	if err != nil {
		return err
	}
	if settings.AlertChannelID != nil {
		id := issue.ID
		_, err := e.svc.channels.Append(ctx, tx, channels.Post{ChannelID: *settings.AlertChannelID, Body: alertText(issue, c),
			IssueID: &id})
		if err != nil && !errors.Is(err, channels.ErrNotFound) {
			return err
		}
	}
	if err := e.svc.tell(ctx, tx, issue, &notify.Occurrence{What: notify.WhatSLABreached, SLAKind: c.Kind}); err != nil {
		return err
	}
	return e.notify(ctx, tx, issue, EventSLABreached, slaEventData(issue, c))
}

// alertText is the alert channel's message, e.g. "SLA breached: first response on issue
// #12 (Ann Lee, due 2026-03-01 14:05 UTC, target 1 h, unassigned)".
func alertText(i *Issue, c *clockState) string {
	who := "unassigned"
	if i.AssigneeID != nil {
		name := fmt.Sprintf("user %d", *i.AssigneeID)
		if i.AssigneeName != nil && *i.AssigneeName != "" {
			name = *i.AssigneeName
		}
		who = "assigned to " + name
	}
	customer := ""
	if i.Customer != nil {
		customer = i.Customer.DisplayName() + ", "
	}
	return fmt.Sprintf("SLA breached: %s on issue #%d (%sdue %s, target %s, %s)", strings.ReplaceAll(c.Kind, "_", " "),
		i.ID, customer, c.DueAt.UTC().Format("2006-01-02 15:04 MST"), humanMinutes(int(c.Target/time.Minute)), who)
}

// humanMinutes writes a target like "30 min", "4 h", "1 h 30 min", "3 days".
func humanMinutes(m int) string {
	switch {
	case m%(24*60) == 0 && m >= 24*60:
		if m == 24*60 {
			return "1 day"
		}
		return fmt.Sprintf("%d days", m/(24*60))
	case m >= 60 && m%60 == 0:
		return fmt.Sprintf("%d h", m/60)
	case m > 60:
		return fmt.Sprintf("%d h %d min", m/60, m%60)
	}
	return fmt.Sprintf("%d min", m)
}

// ClockView is one SLA clock of an issue, as the API shows it.
type ClockView struct {
	TargetMinutes int `json:"target_minutes"`
	// State: running, paused (waiting on the customer, or resolved), met (first response
	// made, or resolved, in time) or breached.
	State            string     `json:"state"`
	DueAt            time.Time  `json:"due_at"` // when paused: the due time if the clock resumed now
	ElapsedSeconds   int64      `json:"elapsed_seconds"`
	RemainingSeconds int64      `json:"remaining_seconds"` // negative when overdue
	WarnedAt         *time.Time `json:"warned_at"`
	BreachedAt       *time.Time `json:"breached_at"` // the due time that passed
}

// IssueSLA is an issue's SLA as of a moment, computed on the fly.
type IssueSLA struct {
	IssueID           int64      `json:"issue_id"`
	WarnPercent       int        `json:"warn_percent"`
	PauseWhileWaiting bool       `json:"pause_while_waiting"`
	WaitingOnCustomer bool       `json:"waiting_on_customer"`
	PausedSeconds     int64      `json:"paused_seconds"`
	FirstResponse     *ClockView `json:"first_response"`
	Resolution        *ClockView `json:"resolution"`
}

// IssueSLA returns the issue's SLA clocks now, or nil when the issue has no SLA (its
// channel had no policy when it opened). An issue opened moments ago may not be stamped
// yet: it is shown with its channel's current policy.
func (s *Service) IssueSLA(ctx context.Context, id int64) (*IssueSLA, error) {
	now := s.now()
	r, err := s.readSLARow(ctx, s.db, id)
	if err != nil {
		return nil, err
	}
	if !r.Stamped {
		p, err := s.SLAPolicy(ctx, r.ChannelID)
		if errors.Is(err, ErrNoSLAPolicy) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		if r.CreatedAt.Before(p.CreatedAt) {
			return nil, nil
		}
		r.Minutes = [2]int{p.FirstResponseMinutes, p.ResolutionMinutes}
		r.WarnPercent, r.PauseWhileWaiting = p.WarnPercent, p.PauseWhileWaiting
	}
	if r.Minutes[0] <= 0 {
		return nil, nil
	}
	cs, err := s.commentMarks(ctx, s.db, id)
	if err != nil {
		return nil, err
	}
	return slaView(r, cs, now), nil
}
