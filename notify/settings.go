package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"

	"github.com/switchboard-hq/switchboard/channels"
	"github.com/switchboard-hq/switchboard/hub"
	"github.com/switchboard-hq/switchboard/store"
)

// Preferences returns a user's resolved preferences, with a row for every channel they
// belong to.
func (s *Service) Preferences(ctx context.Context, userID int64) (*Resolved, error) {
	org, docs, err := loadDocs(ctx, s.db, []int64{userID})
	if err != nil {
		return nil, err
	}
	views, err := s.cfg.Channels.ForUser(ctx, userID)
	if err != nil {
		return nil, err
	}
	ids := make([]int64, 0, len(views))
	for _, v := range views {
		ids = append(ids, v.ID)
	}
	return resolve(docs[userID], org, ids, true), nil
}

// OrgPreferences returns the organisation's defaults, resolved over the factory ones, with
// a row for every channel the organisation set something for and every channel of the
// admin asking.
func (s *Service) OrgPreferences(ctx context.Context, adminID int64) (*Resolved, error) {
	org, _, err := loadDocs(ctx, s.db, nil)
	if err != nil {
		return nil, err
	}
	views, err := s.cfg.Channels.ForUser(ctx, adminID)
	if err != nil {
		return nil, err
	}
	var ids []int64
	for _, v := range views {
		ids = append(ids, v.ID)
	}
	for key := range org.Channels {
		if id, err := strconv.ParseInt(key, 10, 64); err == nil {
			ids = append(ids, id)
		}
	}
	ids = slices.Compact(slices.Sorted(slices.Values(ids)))
	return resolve(nil, org, ids, false), nil
}

// SetPreferences merges a partial document into the user's own (see checkPatch and
// merge: only what is sent changes; null resets to inherit) and returns the result
// resolved. The user's other tabs hear preferences.updated.
func (s *Service) SetPreferences(ctx context.Context, userID int64, patch map[string]any) (*Resolved, error) {
	check := func(ctx context.Context, id int64) error {
		ok, err := s.cfg.Channels.IsMember(ctx, userID, id)
		if err != nil {
			return err
		}
		if !ok {
			return badValue("channel %d: no such channel, or you are not a member of it", id)
		}
		return nil
	}
	if err := checkPatch(ctx, patch, true, check); err != nil {
		return nil, err
	}
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		now := s.now()
		var raw string
		// The upsert locks the row: two PUTs of one user merge one after the other.
		if err := tx.QueryRowContext(ctx, `INSERT INTO notification_prefs (user_id, doc, updated_at) VALUES ($1, '{}', $2)
			ON CONFLICT (user_id) DO UPDATE SET updated_at = excluded.updated_at RETURNING doc`, userID, now).Scan(&raw); err != nil {
			return store.Err(err)
		}
		doc, err := mergeDoc(raw, patch)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE notification_prefs SET doc = $1 WHERE user_id = $2`, doc, userID); err != nil {
			return err
		}
		_, err = s.log.Append(ctx, tx, hub.UserTopic(userID), "preferences.updated", map[string]any{"scope": "user"})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("notify: save preferences: %w", err)
	}
	return s.Preferences(ctx, userID)
}

// SetOrgPreferences merges a partial document into the organisation's defaults, as
// SetPreferences does for a user. Channel defaults may name any channel.
func (s *Service) SetOrgPreferences(ctx context.Context, adminID int64, patch map[string]any) (*Resolved, error) {
	check := func(ctx context.Context, id int64) error {
		_, err := s.cfg.Channels.Get(ctx, id)
		if errors.Is(err, channels.ErrNotFound) {
			return badValue("channel %d: no such channel", id)
		}
		return err
	}
	if err := checkPatch(ctx, patch, false, check); err != nil {
		return nil, err
	}
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		now := s.now()
		var raw string
		if err := tx.QueryRowContext(ctx, `INSERT INTO notification_org_prefs (id, doc, updated_at) VALUES (1, '{}', $1)
			ON CONFLICT (id) DO UPDATE SET updated_at = excluded.updated_at RETURNING doc`, now).Scan(&raw); err != nil {
			return store.Err(err)
		}
		doc, err := mergeDoc(raw, patch)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE notification_org_prefs SET doc = $1 WHERE id = 1`, doc)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("notify: save org preferences: %w", err)
	}
	return s.OrgPreferences(ctx, adminID)
}

// mergeDoc merges a checked patch into a stored document and returns the new one.
func mergeDoc(raw string, patch map[string]any) (string, error) {
	_, base, err := parseDoc(raw)
	if err != nil {
		return "", err
	}
	patch = normalizeSounds(patch)
	b, err := json.Marshal(merge(base, patch))
	if err != nil {
		return "", err
	}
	// The result must read back as a Doc; checkPatch makes this hold.
	if _, _, err := parseDoc(string(b)); err != nil {
		return "", err
	}
	return string(b), nil
}

// normalizeSounds spells a patch's sounds as stored documents hold them. The contract
// makes a sound "a sound name or null", null being "no sound": a choice like any other,
// so a user's null wins over an organisation's chime. In a stored document "none" is
// that silence and an absent sound inherits, which the API spells "inherit". So null
// becomes "none" and "inherit" becomes a reset (null, which merge deletes).
func normalizeSounds(patch map[string]any) map[string]any {
	fix := func(v any) any {
		fields, ok := v.(map[string]any)
		if !ok {
			return v
		}
		sound, ok := fields["sound"]
		if !ok {
			return v
		}
		c := maps.Clone(fields)
		switch sound {
		case nil:
			c["sound"] = noSound
		case inheritSound:
			c["sound"] = nil
		}
		return c
	}
	out := maps.Clone(patch)
	if evs, ok := patch["events"].(map[string]any); ok {
		evs = maps.Clone(evs)
		for name, ev := range evs {
			evs[name] = fix(ev)
		}
		out["events"] = evs
	}
	if chs, ok := patch["channels"].(map[string]any); ok {
		chs = maps.Clone(chs)
		for id, c := range chs {
			cm, ok := fix(c).(map[string]any)
			if !ok {
				continue
			}
			for _, ev := range ChannelEvents {
				if v, ok := cm[ev]; ok {
					cm[ev] = fix(v)
				}
			}
			chs[id] = cm
		}
		out["channels"] = chs
	}
	return out
}
