// Which tab plays the shared notification sounds, and which notifications have played.
//
// Every open tab hears every notification, but only one may ring. Web Locks elect that
// tab best: the browser queues the tabs and hands the lock on when its holder closes. They
// exist only in secure contexts, though, and a team may run Switchboard over plain http
// on a LAN address. There the tabs elect a leader themselves over a BroadcastChannel
// (available everywhere), and where even that is missing, through a lease in localStorage.
//
// An election can briefly have two leaders (a handover, a leader whose timers the browser
// throttled), so the notifications played are also remembered where every tab sees them:
// a sound plays once per notification, whichever tab leads.

const NAME = 'switchboard-sound';
const BEAT_MS = 1000; // the leader says it is alive this often
const SILENCE_MS = 3000; // after this long without a word from it, the others elect anew
const CLAIM_MS = 200; // how long a claim waits for an objection before it leads
const LEASE_KEY = 'switchboard.sound.lease';
const PLAYED_KEY = 'switchboard.sound.played';
const PLAYED_MS = 120000; // how long a played notification is remembered
const PLAYED_MAX = 200;

// The tab's id orders the candidates: the older tab wins a tie (fixed width, so that
// strings compare as the times do), the random part tells apart tabs opened together.
export const tabId = Math.floor(performance.timeOrigin).toString(36).padStart(10, '0')
  + Math.random().toString(36).slice(2, 10).padEnd(8, '0');

/** electionKind is how this browser elects the playing tab: locks, broadcast or lease. */
export const electionKind = () => (navigator.locks ? 'locks' : typeof BroadcastChannel === 'function' ? 'broadcast' : 'lease');

let channel = null; // the election's BroadcastChannel while this tab takes part in one
const played = new Map(); // notification key → until when it counts as played

/**
 * elect enters this tab in the election of the playing tab. onChange(leading) is called
 * each time this tab starts or stops leading. Returns the function that leaves the
 * election, handing the lead on at once when this tab has it.
 */
export function elect(onChange) {
  switch (electionKind()) {
    case 'locks': return byLock(onChange);
    case 'broadcast': return byHeartbeat(onChange);
    default: return byLease(onChange);
  }
}

// byLock: the tabs queue for one Web Lock; its holder leads until it lets go.
function byLock(onChange) {
  const abort = new AbortController();
  let done = null;
  navigator.locks.request(NAME, { signal: abort.signal }, () => {
    onChange(true);
    return new Promise((resolve) => { done = resolve; });
  }).catch(() => {}); // aborted while queued
  return () => {
    abort.abort();
    if (done) {
      done();
      onChange(false);
    }
  };
}

// byHeartbeat: the leader says "beat" every second. A tab that has heard nothing for
// three seconds, or hears the leader resign, claims the lead and takes it unless someone
// objects within CLAIM_MS: a leader objects with a beat (answered at once from the
// message handler, which the browser does not throttle as it does timers in hidden tabs,
// so a slow leader keeps its place), and of two claims that cross, the lower id wins.
// Two leaders that hear each other keep the one with the lower id.
function byHeartbeat(onChange) {
  const ch = new BroadcastChannel(NAME);
  channel = ch;
  let state = 'follower'; // or 'claiming', 'leader'
  let heard = 0; // when the leader (or a claimer) last spoke
  let claimTimer = 0;
  const send = (t, extra) => {
    try { ch.postMessage({ t, id: tabId, ...extra }); } catch { /* closed */ }
  };
  const become = (next) => {
    const was = state === 'leader';
    state = next;
    if (was !== (next === 'leader')) onChange(next === 'leader');
  };
  const claim = () => {
    if (state !== 'follower') return;
    become('claiming');
    send('claim');
    clearTimeout(claimTimer);
    claimTimer = setTimeout(() => {
      if (state !== 'claiming') return;
      become('leader');
      send('beat');
    }, CLAIM_MS);
  };
  ch.addEventListener('message', ({ data: m }) => {
    if (!m || typeof m.id !== 'string' || m.id === tabId) return;
    switch (m.t) {
      case 'beat':
        if (state === 'leader' && m.id > tabId) {
          send('beat'); // the other one steps down when it hears this
          return;
        }
        heard = Date.now();
        become('follower');
        return;
      case 'claim':
        if (state === 'leader') {
          send('beat');
        } else if (state === 'follower' || m.id < tabId) {
          heard = Date.now(); // give the claimer its chance
          become('follower');
        }
        return;
      case 'resign':
        if (state === 'follower') claim();
        return;
      case 'played':
        if (typeof m.key === 'string') remember(m.key, Number(m.until) || Date.now() + PLAYED_MS);
        return;
    }
  });
  const tick = setInterval(() => {
    if (state === 'leader') send('beat');
    else if (state === 'follower' && Date.now() - heard > SILENCE_MS) claim();
  }, BEAT_MS);
  claim();
  return () => {
    clearInterval(tick);
    clearTimeout(claimTimer);
    if (state === 'leader') send('resign');
    become('follower');
    if (channel === ch) channel = null;
    ch.close();
  };
}

// byLease: the leader holds a lease in localStorage that it renews every second; when it
// lapses (or its holder removes it on leaving) a tab writes its own and leads if it still
// reads its own back a moment later (the last writer wins a race).
function byLease(onChange) {
  let leading = false;
  const set = (v) => {
    if (v === leading) return;
    leading = v;
    onChange(v);
  };
  if (!storageWorks()) {
    // Nowhere to agree: each tab plays for itself rather than none.
    set(true);
    return () => set(false);
  }
  const read = () => {
    try { return JSON.parse(localStorage.getItem(LEASE_KEY)); } catch { return null; }
  };
  const take = () => {
    try { localStorage.setItem(LEASE_KEY, JSON.stringify({ id: tabId, until: Date.now() + SILENCE_MS })); } catch { /* full */ }
  };
  let confirm = 0;
  const tick = () => {
    const lease = read();
    if (lease?.id === tabId) {
      take();
      set(true);
      return;
    }
    set(false);
    if (lease && Number(lease.until) > Date.now()) return;
    take();
    clearTimeout(confirm);
    confirm = setTimeout(() => {
      if (read()?.id === tabId) set(true);
    }, CLAIM_MS);
  };
  const onStorage = (e) => {
    if (e.key === LEASE_KEY || e.key === null) tick();
  };
  window.addEventListener('storage', onStorage);
  const timer = setInterval(tick, BEAT_MS);
  tick();
  return () => {
    clearInterval(timer);
    clearTimeout(confirm);
    window.removeEventListener('storage', onStorage);
    if (read()?.id === tabId) {
      try { localStorage.removeItem(LEASE_KEY); } catch { /* gone */ }
    }
    set(false);
  };
}

function storageWorks() {
  try {
    localStorage.setItem(`${LEASE_KEY}.probe`, '1');
    localStorage.removeItem(`${LEASE_KEY}.probe`);
    return true;
  } catch {
    return false;
  }
}

function remember(key, until) {
  played.set(key, until);
  if (played.size > PLAYED_MAX) played.delete(played.keys().next().value);
}

// sharedPlayed merges what localStorage knows into played and drops what expired.
function sharedPlayed(now) {
  try {
    const stored = JSON.parse(localStorage.getItem(PLAYED_KEY) || '{}');
    for (const [k, until] of Object.entries(stored)) {
      if (Number(until) > (played.get(k) || 0)) played.set(k, Number(until));
    }
  } catch { /* private mode or garbage: what this tab heard still counts */ }
  for (const [k, until] of played) if (until <= now) played.delete(k);
}

/**
 * firstPlay is true the first time any tab asks for key (a notification), and records
 * it for the others: in localStorage and on the election's channel.
 */
export function firstPlay(key) {
  const now = Date.now();
  sharedPlayed(now);
  if (played.has(key)) return false;
  const until = now + PLAYED_MS;
  remember(key, until);
  try {
    localStorage.setItem(PLAYED_KEY, JSON.stringify(Object.fromEntries(played)));
  } catch { /* the channel still tells the others */ }
  try { channel?.postMessage({ t: 'played', id: tabId, key, until }); } catch { /* closed */ }
  return true;
}
