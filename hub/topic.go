// Package hub is Switchboard's realtime core: the durable event log, the bus that carries
// events between nodes, and the WebSocket sessions that deliver them to browsers with
// resume by cursor.
//
// The path of a change: a service writes its rows and appends an event in the same
// transaction (Log.Append); after commit the event is published on the Bus; every node's
// Hub receives it, puts each topic's events back in seq order (filling any gap from the
// database), and fans the pre-encoded bytes out to the local connections that follow the
// topic. A connection that comes back with a cursor replays from the database what it
// missed, then continues live with no duplicate at the seam.
package hub

import (
	"fmt"
	"strconv"
	"strings"
)

// Topic names a stream of events with its own sequence: one per channel feed, one per
// user (private), one per issue.
type Topic string

// Topic kinds. The kind letter is also its tag in the cursor encoding.
const (
	KindChannel = 'c'
	KindUser    = 'u'
	KindIssue   = 'i'
)

var kindNames = map[byte]string{KindChannel: "channel", KindUser: "user", KindIssue: "issue"}

// ChannelTopic is the feed of a channel.
func ChannelTopic(id int64) Topic { return Topic("channel:" + strconv.FormatInt(id, 10)) }

// UserTopic is a user's private stream: read markers, notifications, membership changes.
func UserTopic(id int64) Topic { return Topic("user:" + strconv.FormatInt(id, 10)) }

// IssueTopic is the detail stream of one issue.
func IssueTopic(id int64) Topic { return Topic("issue:" + strconv.FormatInt(id, 10)) }

// parse splits a topic into its kind letter and id.
func (t Topic) parse() (kind byte, id int64, err error) {
	name, num, ok := strings.Cut(string(t), ":")
	if !ok {
		return 0, 0, fmt.Errorf("hub: bad topic %q", t)
	}
	for k, n := range kindNames {
		if n == name {
			id, err := strconv.ParseInt(num, 10, 64)
			if err != nil || id <= 0 {
				return 0, 0, fmt.Errorf("hub: bad topic %q", t)
			}
			return k, id, nil
		}
	}
	return 0, 0, fmt.Errorf("hub: bad topic %q", t)
}

func makeTopic(kind byte, id int64) (Topic, bool) {
	name, ok := kindNames[kind]
	if !ok || id <= 0 {
		return "", false
	}
	return Topic(name + ":" + strconv.FormatInt(id, 10)), true
}
