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
	patch = keepSilence(patch)
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

// keepSilence returns patch with the explicit silences of a GET answer kept. A GET answer
// shows a silence ("none" at some level) as a null sound whose source is that level; sent
// back as it is (docs/api.md allows it), the null would reset the user's silence to
// inherit and could unmute an organisation's sound. So a null sound whose "source" is a
// level someone chose at (not the factory) becomes "none", which resolves to the same
// null. Without "source", null resets, as documented.
func keepSilence(patch map[string]any) map[string]any {
	src, _ := patch["source"].(map[string]any)
	if src == nil {
		return patch
	}
	own := func(s any) bool {
		return s == SourceUser || s == SourceUserChannel || s == SourceOrg || s == SourceOrgChannel
	}
	silence := func(fields, sources any) any {
		f, _ := fields.(map[string]any)
		s, _ := sources.(map[string]any)
		if v, ok := f["sound"]; !ok || v != nil || !own(s["sound"]) {
			return fields
		}
		c := maps.Clone(f)
		c["sound"] = noSound
		return c
	}
	out := maps.Clone(patch)
	if evs, ok := patch["events"].(map[string]any); ok {
		srcEvs, _ := src["events"].(map[string]any)
		evs = maps.Clone(evs)
		for name, ev := range evs {
			evs[name] = silence(ev, srcEvs[name])
		}
		out["events"] = evs
	}
	if chs, ok := patch["channels"].(map[string]any); ok {
		srcChs, _ := src["channels"].(map[string]any)
		chs = maps.Clone(chs)
		for id, c := range chs {
			cm, ok := c.(map[string]any)
			if !ok {
				continue
			}
			sc, _ := srcChs[id].(map[string]any)
			cm = silence(cm, sc).(map[string]any)
			cm = maps.Clone(cm)
			for _, ev := range ChannelEvents {
				if v, ok := cm[ev]; ok {
					cm[ev] = silence(v, sc[ev])
				}
			}
			chs[id] = cm
		}
		out["channels"] = chs
	}
	return out
}
