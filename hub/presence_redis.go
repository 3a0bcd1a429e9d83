package hub

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisPresence keeps presence in Redis, built from scores rather than key expiry (Debian's
// Redis 7.0 has no per-field TTL):
//
//	PREFIX presence:u:UID   sorted set: node → expiry (ms); a node's entry ages out when it
//	                        stops renewing, which is how a dead node's users go offline
//	PREFIX presence:users   sorted set: user → latest expiry, to find candidates
//	PREFIX presence:act     sorted set: user → last activity (ms), only ever raised
type redisPresence struct {
	rdb    *redis.Client
	prefix string
}

// Presence returns a PresenceStore on the bus's Redis, under the same prefix.
func (b *RedisBus) Presence() PresenceStore { return &redisPresence{rdb: b.rdb, prefix: b.prefix} }

func (p *redisPresence) userKey(uid int64) string {
	return p.prefix + "presence:u:" + strconv.FormatInt(uid, 10)
}

// Touch implements PresenceStore.
func (p *redisPresence) Touch(ctx context.Context, node string, activity map[int64]time.Time, expires time.Time) error {
	if len(activity) == 0 {
		return nil
	}
	exp := float64(expires.UnixMilli())
	pipe := p.rdb.Pipeline()
	for uid, at := range activity {
		key := p.userKey(uid)
		member := strconv.FormatInt(uid, 10)
		pipe.ZAdd(ctx, key, redis.Z{Score: exp, Member: node})
		pipe.PExpireAt(ctx, key, expires.Add(time.Hour))
		pipe.ZAddGT(ctx, p.prefix+"presence:users", redis.Z{Score: exp, Member: member})
		pipe.ZAddGT(ctx, p.prefix+"presence:act", redis.Z{Score: float64(at.UnixMilli()), Member: member})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("hub: presence touch: %w", err)
	}
	return nil
}

// Leave implements PresenceStore.
func (p *redisPresence) Leave(ctx context.Context, node string, userID int64) error {
	if err := p.rdb.ZRem(ctx, p.userKey(userID), node).Err(); err != nil {
		return fmt.Errorf("hub: presence leave: %w", err)
	}
	return nil
}

// States implements PresenceStore.
func (p *redisPresence) States(ctx context.Context, now time.Time, idleAfter time.Duration) (map[int64]PresenceState, error) {
	nowMs := now.UnixMilli()
	users := p.prefix + "presence:users"
	// Forget users gone for a day; they are offline either way.
	p.rdb.ZRemRangeByScore(ctx, users, "-inf", strconv.FormatInt(nowMs-24*3600*1000, 10))
	candidates, err := p.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{Key: users, ByScore: true,
		Start: strconv.FormatInt(nowMs, 10), Stop: "+inf"}).Result()
	if err != nil {
		return nil, fmt.Errorf("hub: presence read: %w", err)
	}
	out := map[int64]PresenceState{}
	if len(candidates) == 0 {
		return out, nil
	}
	pipe := p.rdb.Pipeline()
	counts := make([]*redis.IntCmd, len(candidates))
	uids := make([]int64, len(candidates))
	for i, m := range candidates {
		uids[i], _ = strconv.ParseInt(m, 10, 64)
		counts[i] = pipe.ZCount(ctx, p.userKey(uids[i]), strconv.FormatInt(nowMs+1, 10), "+inf")
	}
	acts := pipe.ZMScore(ctx, p.prefix+"presence:act", candidates...)
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("hub: presence read: %w", err)
	}
	scores := acts.Val()
	for i, uid := range uids {
		if counts[i].Val() == 0 || uid <= 0 {
			continue
		}
		var at time.Time
		if i < len(scores) {
			at = time.UnixMilli(int64(scores[i]))
		}
		out[uid] = stateOf(true, at, now, idleAfter)
	}
	return out, nil
}
