package email

import (
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	s := &Service{cfg: Config{BackoffMin: time.Second, BackoffMax: 10 * time.Second}}
	for n, base := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 4: 8 * time.Second, 5: 10 * time.Second, 50: 10 * time.Second} {
		seen := map[time.Duration]bool{}
		for range 200 {
			d := s.backoff(n)
			if d < base/2 || d > base {
				t.Fatalf("attempt %d: %s; want within [%s, %s]", n, d, base/2, base)
			}
			seen[d] = true
		}
		if len(seen) < 10 {
			t.Errorf("attempt %d: only %d distinct waits in 200; want jitter", n, len(seen))
		}
	}
}
