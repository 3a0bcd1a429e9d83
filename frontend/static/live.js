// The live connection: one WebSocket to /ws, resumed from the cursor of the last object
// received. The server may pack several JSON objects into one text frame separated by
// "\n"; each is handed to onObject in order. Every disconnect, whatever its close code
// (1001 going away, 1008 slow consumer, 1006 network), is answered by a reconnect with
// backoff and jitter; nothing is lost server-side as long as the cursor is sent back.

const MIN_DELAY = 500;
const MAX_DELAY = 15000;
const JITTER = 0.3;
// The server shows a user idle after minutes without activity; telling it once a minute
// at most, and only when the user does something, keeps that true at no cost.
const ACTIVITY_EVERY = 60000;
const ACTIVITY_EVENTS = ['keydown', 'pointerdown', 'focus'];

export class Live {
  /**
   * @param {object} h handlers:
   *   onObject(obj)       every JSON object received, in order
   *   onOpen()            a hello arrived: the connection is live
   *   onDown(info)        the connection is gone; a reconnect is scheduled.
   *                       info: {code, reason, everOpened, failures}
   */
  constructor(h) {
    this.h = h;
    this.cursor = null; // cursor of the last object that carried one
    this.ws = null;
    this.timer = 0;
    this.attempt = 0; // consecutive failures since the last hello
    this.stopped = true;
    this.live = false;
    this.onOnline = () => this.reconnectNow();
    this.onVisible = () => {
      if (document.visibilityState === 'visible') {
        this.reconnectNow();
        this.activity();
      }
    };
    this.lastActivity = 0;
    this.onActivity = () => this.activity();
    // Topics subscribed to beyond what the server follows by itself (an open issue). The
    // server forgets them with the connection: they are sent again after every hello.
    this.topics = new Set();
  }

  /** send writes one client message now; false when there is no open connection. */
  send(obj) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    try {
      this.ws.send(JSON.stringify(obj));
      return true;
    } catch {
      return false; // closing: the next hello sends the subscriptions again
    }
  }

  /** subscribe follows topic on this and every later connection (answered by "subscribed"). */
  subscribe(topic) {
    this.topics.add(topic);
    if (this.live) this.send({ type: 'subscribe', topic });
  }

  unsubscribe(topic) {
    if (!this.topics.delete(topic)) return;
    if (this.live) this.send({ type: 'unsubscribe', topic });
  }

  /** activity reports that the user did something, at most once a minute. */
  activity() {
    const now = Date.now();
    if (now - this.lastActivity < ACTIVITY_EVERY) return;
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return;
    this.lastActivity = now;
    try {
      this.ws.send('{"type":"activity"}');
    } catch {
      // closing; the next connection counts as activity by itself
    }
  }

  start(cursor = null) {
    if (!this.stopped) return;
    this.stopped = false;
    this.cursor = cursor;
    window.addEventListener('online', this.onOnline);
    document.addEventListener('visibilitychange', this.onVisible);
    for (const t of ACTIVITY_EVENTS) window.addEventListener(t, this.onActivity, { capture: true, passive: true });
    this.connect();
  }

  stop() {
    this.stopped = true;
    this.live = false;
    clearTimeout(this.timer);
    this.timer = 0;
    window.removeEventListener('online', this.onOnline);
    document.removeEventListener('visibilitychange', this.onVisible);
    for (const t of ACTIVITY_EVENTS) window.removeEventListener(t, this.onActivity, { capture: true });
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      try {
        ws.close(1000, 'bye');
      } catch {
        // already closing
      }
    }
  }

  url() {
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const q = this.cursor ? `?cursor=${encodeURIComponent(this.cursor)}` : '';
    return `${proto}//${location.host}/ws${q}`;
  }

  connect() {
    this.timer = 0;
    if (this.stopped || this.ws) return;
    let ws;
    try {
      ws = new WebSocket(this.url());
    } catch {
      this.down(ws, 1006, 'cannot connect', false);
      return;
    }
    this.ws = ws;
    let opened = false;
    ws.onmessage = (ev) => {
      if (this.ws !== ws || typeof ev.data !== 'string') return;
      for (const line of ev.data.split('\n')) {
        if (!line.trim()) continue;
        let obj;
        try {
          obj = JSON.parse(line);
        } catch {
          console.warn('switchboard: ignoring a frame that is not JSON');
          continue;
        }
        if (!obj || typeof obj !== 'object') continue;
        if (typeof obj.cursor === 'string' && obj.cursor) this.cursor = obj.cursor;
        if (obj.type === 'hello') {
          opened = true;
          this.lastActivity = Date.now(); // connecting counts as activity on the server
          this.attempt = 0;
          this.live = true;
          for (const topic of this.topics) this.send({ type: 'subscribe', topic });
          this.h.onOpen?.();
        }
        try {
          this.h.onObject(obj);
        } catch (err) {
          console.error('switchboard: handling a live event failed', obj.type, err);
        }
      }
    };
    ws.onclose = (ev) => this.down(ws, ev.code, ev.reason, opened);
    ws.onerror = () => {}; // onclose follows and carries the code
  }

  down(ws, code, reason, everOpened) {
    if (ws && this.ws !== ws) return;
    this.ws = null;
    this.live = false;
    if (this.stopped) return;
    // 4001: the user lost access to a topic this connection followed (left a channel).
    // Not an outage: resume from the cursor at once, without the offline banner; the new
    // connection follows only what the user may see now.
    if (code === 4001 && everOpened) {
      this.connect();
      return;
    }
    this.attempt++;
    this.h.onDown?.({ code, reason: reason || '', everOpened, failures: this.attempt });
    if (this.stopped) return; // the handler may have stopped us (session ended)
    this.schedule();
  }

  schedule() {
    clearTimeout(this.timer);
    const base = Math.min(MAX_DELAY, MIN_DELAY * 2 ** Math.max(0, this.attempt - 1));
    const delay = base * (1 + (Math.random() * 2 - 1) * JITTER);
    this.timer = setTimeout(() => this.connect(), Math.round(delay));
  }

  /** reconnectNow skips the backoff wait (the browser came back online or into view). */
  reconnectNow() {
    if (this.stopped || this.ws || !this.timer) return;
    clearTimeout(this.timer);
    this.connect();
  }
}
