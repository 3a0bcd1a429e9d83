package hub_test

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-hq/switchboard/hub"
	"github.com/switchboard-hq/switchboard/internal/storetest"
	"github.com/switchboard-hq/switchboard/store"
)

// TestSeqsBecomeVisibleInOrder is the invariant resume and gap fill rest on: when event
// (T, n) is visible to a reader, every (T, m < n) is too. Writers on PostgreSQL append
// and then dawdle before committing, in random order; a reader polling "after my last
// seq" must never see a seq jump over one it has not seen.
func TestSeqsBecomeVisibleInOrder(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		log := hub.NewLog(db, nil)
		ctx := context.Background()
		topic := hub.ChannelTopic(1)
		const writers, each = 8, 15
		var done atomic.Bool
		var wg sync.WaitGroup
		for range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range each {
					err := db.InTx(ctx, func(tx *store.Tx) error {
						if _, err := log.Append(ctx, tx, topic, "test.event", map[string]int{}); err != nil {
							return err
						}
						time.Sleep(time.Duration(rand.IntN(3)) * time.Millisecond) // hold the commit open
						return nil
					})
					if err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		go func() { wg.Wait(); done.Store(true) }()
		var last int64
		for {
			finished := done.Load()
			evs, err := log.Range(ctx, topic, last, 1<<62, 1000)
			if err != nil {
				t.Fatal(err)
			}
			for _, ev := range evs {
				if ev.Seq != last+1 {
					t.Fatalf("reader saw seq %d after %d: a lower seq committed later", ev.Seq, last)
				}
				last = ev.Seq
			}
			if finished && len(evs) == 0 {
				break
			}
		}
		if last != writers*each {
			t.Errorf("read %d events; want %d", last, writers*each)
		}
	})
}
