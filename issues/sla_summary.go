package issues

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// SLA states of a summary beyond the clock states of ClockView.
const (
	SLAStateWarning = "warning" // running, past its warning point
	SLAStateNone    = "none"    // the issue has no SLA
)

// SLASummary is the one clock of an issue that most needs attention, for lists: a
// breached clock, else one past its warning point, else a running one (the earlier due
// first), else a paused one, else a met one. It is what GET /api/issues/{id}/sla shows
// for that clock, condensed; a clock that breached stays breached on record, as the
// figures count it.
type SLASummary struct {
	State string     `json:"state"`            // running, warning, paused, met, breached or none
	Kind  string     `json:"kind,omitempty"`   // first_response or resolution; absent when none
	DueAt *time.Time `json:"due_at,omitempty"` // that clock's due time; absent when none
}

// slaRank orders summary states, most urgent highest.
var slaRank = map[string]int{"breached": 5, SLAStateWarning: 4, "running": 3, "paused": 2, "met": 1}

// Summary condenses an issue's SLA view (nil: no SLA) into its most urgent clock.
func (v *IssueSLA) Summary() SLASummary {
	if v == nil {
		return SLASummary{State: SLAStateNone}
	}
	var best *SLASummary
	for k, c := range []*ClockView{v.FirstResponse, v.Resolution} {
		if c == nil {
			continue
		}
		state := c.State
		// Past the warning point: the engine's warning, or the elapsed share (the engine may
		// not have ticked yet).
		if state == "running" && (c.WarnedAt != nil || c.ElapsedSeconds*100 >= int64(c.TargetMinutes)*60*int64(v.WarnPercent)) {
			state = SLAStateWarning
		}
		due := c.DueAt
		s := SLASummary{State: state, Kind: slaKinds[k], DueAt: &due}
		if best == nil || slaRank[s.State] > slaRank[best.State] ||
			(slaRank[s.State] == slaRank[best.State] && s.DueAt.Before(*best.DueAt)) {
			best = &s
		}
	}
	if best == nil {
		return SLASummary{State: SLAStateNone}
	}
	return *best
}

// slaView is the SLA view of an issue at now from its stored state and comments, with
// r's targets already known (stamped, or taken from its channel's policy); nil when it
// has no SLA. It mirrors IssueSLA, which reads the same two things one issue at a time.
func slaView(r *slaRow, cs []commentMark, now time.Time) *IssueSLA {
	if r.Minutes[0] <= 0 {
		return nil
	}
	a := assess(r, cs, now)
	out := &IssueSLA{IssueID: r.ID, WarnPercent: r.WarnPercent, PauseWhileWaiting: r.PauseWhileWaiting,
		WaitingOnCustomer: a.Waiting, PausedSeconds: int64(a.PausedTotal / time.Second)}
	views := make([]*ClockView, 2)
	for k, c := range a.Clocks {
		v := &ClockView{TargetMinutes: int(c.Target / time.Minute), DueAt: c.DueAt, ElapsedSeconds: int64(c.Elapsed / time.Second),
			RemainingSeconds: int64((c.Target - c.Elapsed) / time.Second), WarnedAt: c.WarnedAt, BreachedAt: c.BreachedAt}
		switch {
		case c.BreachedAt != nil || (c.StoppedAt == nil && !c.DueAt.After(now)) || (c.StoppedAt != nil && c.DueAt.Before(*c.StoppedAt)):
			v.State = "breached"
		case k == 0 && r.FirstResponseAt != nil, k == 1 && a.Resolved:
			v.State = "met"
		case c.Paused || a.Resolved:
			v.State = "paused"
		default:
			v.State = "running"
		}
		views[k] = v
	}
	out.FirstResponse, out.Resolution = views[0], views[1]
	return out
}

// SLASummaries computes the SLA summary of each issue in ids as of one moment, in a fixed
// number of queries whatever the page size (the issues' SLA columns, their customer
// messages and replies, and the policies when an issue is not stamped yet), so a list
// page never costs a query per issue.
func (s *Service) SLASummaries(ctx context.Context, ids []int64) (map[int64]SLASummary, error) {
	out := make(map[int64]SLASummary, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	now := s.now()
	args := make([]any, len(ids))
	marks := make([]string, len(ids))
	for i, id := range ids {
		args[i] = id
		marks[i] = fmt.Sprintf("$%d", i+1)
	}
	in := "(" + strings.Join(marks, ",") + ")"

	rowsByID := make(map[int64]*slaRow, len(ids))
	rows, err := s.db.QueryContext(ctx, `SELECT `+slaRowCols+` FROM issues WHERE id IN `+in, args...)
	if err != nil {
		return nil, fmt.Errorf("issues: sla summaries: %w", err)
	}
	unstamped := false
	for rows.Next() {
		var r slaRow
		var periods string
		var first *int
		if err := rows.Scan(&r.ID, &r.ChannelID, &r.Status, &r.AssigneeID, &r.CreatedAt, &r.FirstResponseAt, &r.ResolvedAt, &r.ClosedAt,
			&first, &r.Minutes[1], &r.WarnPercent, &r.PauseWhileWaiting, &periods, &r.ResolvedSince,
			&r.Warned[0], &r.Warned[1], &r.Breached[0], &r.Breached[1]); err != nil {
			rows.Close()
			return nil, fmt.Errorf("issues: sla summaries: %w", err)
		}
		if first != nil {
			r.Stamped, r.Minutes[0] = true, *first
		} else {
			unstamped = true
		}
		if err := json.Unmarshal([]byte(periods), &r.Periods); err != nil {
			rows.Close()
			return nil, fmt.Errorf("issues: sla periods of %d: %w", r.ID, err)
		}
		rowsByID[r.ID] = &r
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return nil, fmt.Errorf("issues: sla summaries: %w", err)
	}
	rows.Close()

	// As IssueSLA does: an issue the engine has not stamped yet is shown with its
	// channel's current policy, if it opened under it.
	if unstamped {
		policies, err := s.slaPolicies(ctx)
		if err != nil {
			return nil, err
		}
		for _, r := range rowsByID {
			if r.Stamped {
				continue
			}
			p := policies[r.ChannelID]
			if p == nil || r.CreatedAt.Before(p.CreatedAt) {
				continue // Minutes stay 0: no SLA
			}
			r.Minutes = [2]int{p.FirstResponseMinutes, p.ResolutionMinutes}
			r.WarnPercent, r.PauseWhileWaiting = p.WarnPercent, p.PauseWhileWaiting
		}
	}

	// Only issues with an SLA need their comments.
	var withSLA []any
	var slaMarks []string
	for _, id := range ids {
		if r := rowsByID[id]; r != nil && r.Minutes[0] > 0 {
			withSLA = append(withSLA, id)
			slaMarks = append(slaMarks, fmt.Sprintf("$%d", len(withSLA)))
		}
	}
	comments := map[int64][]commentMark{}
	if len(withSLA) > 0 {
		rows, err := s.db.QueryContext(ctx, `SELECT issue_id, id, kind, COALESCE(delivery_status, ''), created_at FROM comments
			WHERE issue_id IN (`+strings.Join(slaMarks, ",")+`) AND kind IN ('customer', 'reply') ORDER BY issue_id, id`, withSLA...)
		if err != nil {
			return nil, fmt.Errorf("issues: sla summaries: comments: %w", err)
		}
		for rows.Next() {
			var issueID int64
			var c commentMark
			var status string
			if err := rows.Scan(&issueID, &c.ID, &c.Kind, &status, &c.At); err != nil {
				rows.Close()
				return nil, fmt.Errorf("issues: sla summaries: comments: %w", err)
			}
			c.Failed = status == "failed" || status == "undelivered"
			comments[issueID] = append(comments[issueID], c)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("issues: sla summaries: comments: %w", err)
		}
	}

	for _, id := range ids {
		r := rowsByID[id]
		if r == nil {
			continue // gone meanwhile
		}
		out[id] = slaView(r, comments[id], now).Summary()
	}
	return out, nil
}
