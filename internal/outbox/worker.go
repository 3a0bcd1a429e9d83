package outbox

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Run delivers due messages until ctx ends, then waits for the deliveries in flight
// (each bounded by SendTimeout) and returns. Run it once per node; several nodes share
// the work through leases.
func (s *Service) Run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	slots := make(chan struct{}, s.cfg.Concurrency)
	for {
		if err := s.reap(ctx); err != nil && ctx.Err() == nil {
			s.cfg.Logger.Warn("outbox: reaping expired leases failed", "err", err)
		}
		s.claimAll(ctx, slots, &wg)
		wait := s.cfg.Poll
		if next, ok, err := s.nextDue(ctx); err == nil && ok {
			wait = min(wait, max(next.Sub(s.now()), 0))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-s.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// claimAll claims due rows while there are free slots, starting one delivery for each.
func (s *Service) claimAll(ctx context.Context, slots chan struct{}, wg *sync.WaitGroup) {
	for ctx.Err() == nil {
		select {
		case slots <- struct{}{}:
		default:
			return // all busy: a finishing delivery kicks the loop
		}
		m, token, err := s.claim(ctx)
		if err != nil {
			<-slots
			if !errors.Is(err, errNothingDue) && ctx.Err() == nil {
				s.cfg.Logger.Warn("outbox: claim failed", "err", err)
			}
			return
		}
		wg.Go(func() {
			defer func() {
				<-slots
				s.Kick() // the next message of this lane may go now
			}()
			s.deliver(m, token)
		})
	}
}

// deliver runs one attempt and records its outcome. It does not take the worker's
// context: an attempt in flight when the node shuts down completes (within SendTimeout)
// rather than being cut off into an unknown outcome.
func (s *Service) deliver(m *Message, token string) {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.SendTimeout)
	defer cancel()
	var (
		rec *Receipt
		err error
	)
	if c := s.connector(m.Connector); c == nil {
		err = &Error{Outcome: Permanent, Reason: fmt.Sprintf("no %s connector is configured on this server", m.Connector)}
	} else {
		rec, err = c.Deliver(ctx, m)
		if err == nil && rec == nil {
			rec = &Receipt{}
		}
	}
	// Recording gets its own time: the attempt may have used all of its own.
	rctx, rcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer rcancel()
	if ferr := s.finish(rctx, m, token, rec, err); ferr != nil {
		// The row stays "sending" until its lease ends, then becomes unknown: never sent
		// twice because the database was briefly away.
		s.cfg.Logger.Error("outbox: recording an attempt failed", "id", m.ID, "send_err", err, "err", ferr)
		return
	}
	if err != nil {
		s.cfg.Logger.Info("outbox: attempt failed", "id", m.ID, "connector", m.Connector, "attempt", m.Attempt, "err", err)
	}
}

// nextDue returns when the earliest row waiting for a later time is due. Rows already
// due but held behind an earlier message of their lane are not counted: the delivery
// that holds them kicks the loop when it ends (or, on another node, the poll finds them).
func (s *Service) nextDue(ctx context.Context) (time.Time, bool, error) {
	var next time.Time
	err := s.db.QueryRowContext(ctx, `SELECT next_attempt_at FROM outbox WHERE state = 'pending' AND next_attempt_at > $1
		ORDER BY next_attempt_at LIMIT 1`, s.now()).Scan(&next)
	if err != nil {
		return time.Time{}, false, err
	}
	return next, true, nil
}
