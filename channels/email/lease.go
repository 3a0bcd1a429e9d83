package email

import (
	"context"
	"time"
)

// Leaser is a database lease (internal/lease): among nodes sharing a database, one holds
// it at a time and must renew it within its TTL.
type Leaser interface {
	Acquire(ctx context.Context, now time.Time) (bool, error)
	Release(ctx context.Context) error
	TTL() time.Duration
}

// RunLeased runs intake only while this node holds l, so that one node in a cluster reads
// the mailbox: it tries to take the lease every TTL/3, runs intake while it holds it,
// renews it every TTL/3, and stops intake as soon as a renewal fails or is refused. It
// releases the lease when ctx ends. The lease is not a fence: two nodes may briefly
// overlap after a stall, which intake tolerates (it is idempotent by Message-ID and the
// mailbox position only moves forward).
func (s *Service) RunLeased(ctx context.Context, l Leaser) error {
	every := max(l.TTL()/3, 10*time.Millisecond)
	wait := func() bool {
		t := time.NewTimer(every)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		}
	}
	for {
		held, err := l.Acquire(ctx, s.cfg.Now())
		if err != nil && ctx.Err() == nil {
			s.log.Warn("email: cannot take the intake lease", "err", err)
		}
		if held {
			s.log.Info("email: this node reads the mailbox (lease taken)")
			runCtx, stop := context.WithCancel(ctx)
			done := make(chan struct{})
			go func() {
				defer close(done)
				_ = s.Run(runCtx)
			}()
			for held && wait() {
				held, err = l.Acquire(ctx, s.cfg.Now())
				if err != nil || !held {
					s.log.Warn("email: intake lease lost; another node may read the mailbox now", "err", err)
					held = false
				}
			}
			stop()
			<-done
			if ctx.Err() != nil {
				rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				err := l.Release(rctx)
				cancel()
				if err != nil {
					s.log.Warn("email: releasing the intake lease", "err", err)
				}
				return nil
			}
		}
		if !wait() {
			return nil
		}
	}
}
