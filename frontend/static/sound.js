// The notification sounds, synthesised with Web Audio: no files to download, nothing to
// decode. Browsers start an AudioContext only from a user gesture, hence the explicit
// "Enable sound" step; the choice is remembered (localStorage) and the context is resumed
// at the next click or key press in every tab.
//
// With several tabs open every tab hears the same notification, but one sound must play:
// the tabs that have sound enabled elect one player (sound-leader.js: a Web Lock, or
// without one, as over plain http on a LAN address, a heartbeat over BroadcastChannel or a
// lease in localStorage), and a notification that any tab has played is not played again.

import { elect, electionKind, firstPlay } from './sound-leader.js';

const KEY = 'switchboard.sound';
const REPEAT_KEY = 'switchboard.sound.repeat';

// Each recipe is a list of tones: oscillator type, start and end frequency, start offset,
// duration and peak gain.
const RECIPES = {
  chime: [{ f: 880, dur: 0.5 }, { f: 1318.5, at: 0.13, dur: 0.75 }],
  ping: [{ f: 1760, dur: 0.35, gain: 0.22 }],
  knock: [
    { type: 'triangle', f: 230, f2: 110, dur: 0.09, gain: 0.7 },
    { type: 'triangle', f: 230, f2: 110, at: 0.17, dur: 0.09, gain: 0.7 },
  ],
  pop: [{ f: 950, f2: 240, dur: 0.13, gain: 0.4 }],
  bell: [{ f: 660, dur: 1.3, gain: 0.22 }, { f: 1650, dur: 0.8, gain: 0.09 }, { f: 2390, dur: 0.5, gain: 0.05 }],
};

/** SOUNDS are the names the preferences API accepts, in menu order. */
export const SOUNDS = Object.keys(RECIPES);

let ac = null;
let leader = false;
let release = null; // leaves the election (handing the lead on)
let joined = null; // the current election's token: a late word from an older one is ignored
const listeners = new Set();

// What tests and the curious can read: how many sounds played, the last, the context state,
// whether this tab leads, and how the tabs elect the leader.
const probe = { played: 0, last: '', state: 'none', leader: false, election: electionKind() };
window.__switchboardSound = probe;

function emit() {
  probe.leader = leader;
  probe.state = ac ? ac.state : 'none';
  for (const fn of listeners) fn();
}

/** onSoundChange calls fn when sound is enabled, disabled, or this tab's role changes. */
export function onSoundChange(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

const stored = (k) => {
  try { return localStorage.getItem(k); } catch { return null; }
};
const store = (k, v) => {
  try { if (v == null) localStorage.removeItem(k); else localStorage.setItem(k, v); } catch { /* private mode */ }
};

/** soundWanted: the user enabled sound (in this browser). */
export const soundWanted = () => stored(KEY) === 'on';
/** soundReady: enabled and the audio context of this tab is running. */
export const soundReady = () => soundWanted() && ac?.state === 'running';
export const repeatWanted = () => stored(REPEAT_KEY) === 'on';
export const setRepeat = (on) => { store(REPEAT_KEY, on ? 'on' : null); emit(); };
export const isLeader = () => leader;

// context creates or resumes the AudioContext; only works for real from a user gesture.
function context() {
  const AC = window.AudioContext || window.webkitAudioContext;
  if (!AC) return null;
  if (!ac) {
    ac = new AC();
    ac.addEventListener('statechange', emit);
  }
  if (ac.state === 'suspended') ac.resume().catch(() => {});
  return ac;
}

/** enableSound is called from a click: starts audio and joins the queue of players. */
export function enableSound() {
  store(KEY, 'on');
  context();
  join();
  emit();
}

export function disableSound() {
  store(KEY, null);
  leave();
  emit();
}

function join() {
  if (release) return;
  const token = {};
  joined = token;
  release = elect((on) => {
    if (joined !== token) return;
    leader = on;
    emit();
  });
}

function leave() {
  const r = release;
  joined = null;
  release = null;
  leader = false;
  r?.();
}

/**
 * startSound: when sound was enabled earlier, resume it at the first gesture in this tab.
 * Returns a function that stops it and leaves the queue.
 */
export function startSound() {
  const wake = () => {
    if (!soundWanted()) return;
    context();
    join();
    emit();
  };
  // A page closing, kept in the back/forward cache or frozen (browsers freeze tabs in the
  // background) cannot play: it hands the lead on at once. A frozen page may still answer
  // the other tabs' messages, and would keep the lead it cannot use.
  const hide = () => { leave(); emit(); };
  const back = (e) => { if (e.persisted && soundReady()) { join(); emit(); } };
  const thaw = () => { if (soundReady()) { join(); emit(); } };
  const opts = { capture: true, passive: true };
  window.addEventListener('pointerdown', wake, opts);
  window.addEventListener('keydown', wake, opts);
  window.addEventListener('pagehide', hide);
  window.addEventListener('pageshow', back);
  document.addEventListener('freeze', hide);
  document.addEventListener('resume', thaw);
  if (soundWanted() && navigator.userActivation?.hasBeenActive) wake();
  return () => {
    window.removeEventListener('pointerdown', wake, opts);
    window.removeEventListener('keydown', wake, opts);
    window.removeEventListener('pagehide', hide);
    window.removeEventListener('pageshow', back);
    document.removeEventListener('freeze', hide);
    document.removeEventListener('resume', thaw);
    leave();
    if (ac) ac.close().catch(() => {});
    ac = null;
    emit();
  };
}

function synth(name) {
  const recipe = RECIPES[name];
  if (!recipe || !ac) return false;
  const out = ac.createGain();
  out.gain.value = 0.8;
  out.connect(ac.destination);
  for (const t of recipe) {
    const at = ac.currentTime + 0.02 + (t.at || 0);
    const osc = ac.createOscillator();
    const g = ac.createGain();
    osc.type = t.type || 'sine';
    osc.frequency.setValueAtTime(t.f, at);
    if (t.f2) osc.frequency.exponentialRampToValueAtTime(t.f2, at + t.dur);
    g.gain.setValueAtTime(0.0001, at);
    g.gain.exponentialRampToValueAtTime(t.gain || 0.3, at + 0.012);
    g.gain.exponentialRampToValueAtTime(0.0001, at + t.dur);
    osc.connect(g).connect(out);
    osc.start(at);
    osc.stop(at + t.dur + 0.05);
  }
  probe.played++;
  probe.last = name;
  emit();
  return true;
}

/** preview plays name now, in this tab, whatever the shared settings: the Play buttons. */
export function preview(name) {
  if (!context()) return false;
  return synth(name);
}

/**
 * playShared plays name for a notification: only when enabled and in the leading tab, and
 * when key (the notification's, if given) has not played in any tab yet. The repeat
 * until read passes no key: it rings again on purpose.
 */
export function playShared(name, key) {
  if (!name || !leader || !soundReady()) return false;
  if (key != null && !firstPlay(String(key))) return false;
  return synth(name);
}
