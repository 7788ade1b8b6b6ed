/*
 * Keerpunt front-end behaviour. Plain ES2019, no build step, no eval, no inline script:
 * works under CSP `script-src 'self'; style-src 'self'`.
 *
 * Load order in <head>: <meta name="htmx-config">, <meta name="csrf-token">, then
 *   <script src="/static/vendor/htmx/htmx.min.js" defer></script>
 *   <script src="/static/vendor/htmx-ext-ws/ws.js" defer></script>
 *   <script src="/static/js/keerpunt.js" defer></script>
 *
 * APIs relied on (verified in the vendored sources, see static/vendor/README.md):
 * - htmx 2.0.11: every event is a bubbling CustomEvent, so listeners sit on document.
 *   `htmx:configRequest` (detail.headers is a plain object sent as request headers).
 *   `htmx:oobBeforeSwap` fired on the target inside oobSwap(), detail
 *   {shouldSwap, target, fragment}; shouldSwap=false skips the swap. `fragment` is a
 *   DocumentFragment holding a copy of the oob element for outerHTML swaps, or that copy
 *   itself (an Element) for innerHTML/beforeend/... swaps. Elements in the fragment with
 *   `hx-preserve` and an id are replaced by the live element of that id.
 * - htmx-ext-ws 2.0.4, fired on the element with ws-connect:
 *   `htmx:wsOpen` / `htmx:wsClose` {event, socketWrapper}, `htmx:wsError`
 *   {error, socketWrapper}, `htmx:wsBeforeMessage` / `htmx:wsAfterMessage`
 *   {message, socketWrapper}; socketWrapper.send(string) and .reconnect().
 *   The extension reconnects by itself after close codes 1006, 1011, 1012, 1013.
 */
(function () {
  'use strict';

  var ANNOUNCE_DELAY_MS = 100;

  function metaContent(name) {
    var el = document.querySelector('meta[name="' + name + '"]');
    return el ? el.getAttribute('content') : null;
  }

  function toSeq(value) {
    var n = parseInt(value, 10);
    return isFinite(n) && n > 0 ? n : 0;
  }

  /* The element carrying ws-connect that fired a ws event (normally #kp-live). */
  function socketElement(evt) {
    var t = evt.target;
    if (t && t.closest) {
      var s = t.closest('[ws-connect], [data-ws-connect]');
      if (s) return s;
    }
    return document.getElementById('kp-live');
  }

  /* Parse a websocket message into an inert fragment (scripts do not run, images do not load). */
  function parseMessage(message) {
    var tpl = document.createElement('template');
    tpl.innerHTML = typeof message === 'string' ? message : '';
    return tpl.content;
  }

  /* ---- a. CSRF header on every htmx request ---- */

  document.addEventListener('htmx:configRequest', function (evt) {
    var token = metaContent('csrf-token');
    if (token && evt.detail && evt.detail.headers) {
      evt.detail.headers['X-CSRF-Token'] = token;
    }
  });

  /* ---- e. polite announcements ---- */

  var pending = [];
  var announceTimer = null;

  function announce(text) {
    text = (text || '').trim();
    var region = document.getElementById('kp-announce');
    if (!region || !text) return;
    if (pending.indexOf(text) === -1) pending.push(text);
    if (announceTimer !== null) return;
    // Empty first, then fill: screen readers then also read a repeated text.
    region.textContent = '';
    announceTimer = setTimeout(function () {
      announceTimer = null;
      region.textContent = pending.join(' ');
      pending = [];
    }, ANNOUNCE_DELAY_MS);
  }

  /* ---- c. connection status ---- */

  function setConnection(online, ended) {
    var el = document.getElementById('kp-conn');
    if (!el) return;
    el.classList.toggle('is-online', online);
    el.classList.toggle('is-offline', !online);
    var text = el.getAttribute(online ? 'data-online' : ended ? 'data-ended' : 'data-offline');
    // Only write on change: repeated reconnect attempts must not repeat the announcement.
    if (text !== null && el.textContent !== text) el.textContent = text;
  }

  /* ---- b. resume after (re)connect ---- */

  /* ws.js waits up to 2^n seconds (at most 64) before its n-th reconnect. A phone without
   * any network (navigator.onLine false) would then catch up only long after its signal is
   * back; while offline a try costs nothing, so try every second and catch up at once. */
  function reconnectDelay(retryCount) {
    if (navigator.onLine === false) return 500 + Math.random() * 500;
    return 1000 * Math.pow(2, Math.min(retryCount, 6)) * Math.random(); // ws.js "full-jitter"
  }

  if (window.htmx && window.htmx.config) window.htmx.config.wsReconnectDelay = reconnectDelay;

  var retries = new WeakMap();
  var known = []; // [{elt, wrapper, open}] for reconnects ws.js does not do itself
  var leaving = false;

  function remember(elt, wrapper, open) {
    for (var i = 0; i < known.length; i++) {
      if (known[i].elt === elt) {
        known[i].wrapper = wrapper;
        known[i].open = open;
        return;
      }
    }
    known.push({ elt: elt, wrapper: wrapper, open: open });
  }

  function scheduleReconnect(elt, wrapper) {
    var n = retries.get(elt) || 0;
    retries.set(elt, n + 1);
    var delay = Math.min(30000, 1000 * Math.pow(2, n)) * (0.5 + Math.random() / 2);
    setTimeout(function () {
      if (!leaving && elt.isConnected) wrapper.reconnect();
    }, delay);
  }

  document.addEventListener('htmx:wsOpen', function (evt) {
    setConnection(true);
    var elt = socketElement(evt);
    var wrapper = evt.detail && evt.detail.socketWrapper;
    if (!elt || !wrapper) return;
    retries.delete(elt);
    remember(elt, wrapper, true);
    // Sent on the first connect and on every reconnect; the socket is open here, so
    // send() goes out at once, before anything ws.js had queued.
    wrapper.send(JSON.stringify({ type: 'resume', after: toSeq(elt.getAttribute('data-last-seq')) }));
  });

  document.addEventListener('htmx:wsClose', function (evt) {
    var detail = evt.detail || {};
    var closeCode = detail.event && detail.event.code;
    // 4401/4403: the server ended this login or refused access; ws.js does not retry these.
    setConnection(false, closeCode === 4401 || closeCode === 4403);
    var elt = socketElement(evt);
    var wrapper = detail.socketWrapper;
    if (!elt || !wrapper) return;
    remember(elt, wrapper, false);
    var code = detail.event && detail.event.code;
    // 1001 "going away" (server or proxy shutting down) is not retried by ws.js.
    if (!leaving && elt.isConnected && code === 1001) {
      scheduleReconnect(elt, wrapper);
    }
  });

  document.addEventListener('htmx:wsError', function () {
    setConnection(false);
  });

  window.addEventListener('pagehide', function () {
    leaving = true;
  });

  window.addEventListener('pageshow', function (evt) {
    leaving = false;
    if (!evt.persisted) return;
    // Back/forward cache restore: sockets closed while the page was hidden.
    known = known.filter(function (k) { return k.elt.isConnected; });
    known.forEach(function (k) {
      if (!k.open) k.wrapper.reconnect();
    });
  });

  /* ---- d. never silently drop an edit ---- */

  var inWsMessage = false;

  document.addEventListener('htmx:wsBeforeMessage', function () {
    inWsMessage = true;
    // Message handling in ws.js is synchronous; this only matters if it throws or is cancelled.
    setTimeout(function () { inWsMessage = false; }, 0);
  });

  function incomingCopy(fragment, id) {
    if (!fragment || !id) return null;
    if (fragment.nodeType === 1 && fragment.id === id) return fragment;
    if (!fragment.querySelector) return null;
    return fragment.querySelector('#' + CSS.escape(id));
  }

  function isRealChange(live, incoming) {
    if (!incoming) return true;
    var a = live.getAttribute('data-version');
    var b = incoming.getAttribute('data-version');
    return a === null || b === null || a !== b;
  }

  /* An incoming item whose text this viewer may no longer see (data-kp-withheld). */
  function isWithheld(incoming) {
    return !!(incoming && incoming.hasAttribute && incoming.hasAttribute('data-kp-withheld'));
  }

  function markChangedElsewhere(item) {
    if (item.getAttribute('data-changed-elsewhere') === '1') return;
    item.setAttribute('data-changed-elsewhere', '1');
    var notices = item.querySelectorAll('.kp-changed-notice');
    for (var i = 0; i < notices.length; i++) {
      notices[i].removeAttribute('hidden');
      announce(notices[i].textContent);
    }
  }

  document.addEventListener('htmx:oobBeforeSwap', function (evt) {
    if (!inWsMessage) return;
    var detail = evt.detail;
    var target = detail && detail.target;
    if (!target || !target.closest) return;

    // The item being edited, or something inside it, is the target: keep the form —
    // unless the text may no longer be shown here (consent withdrawn): then it goes.
    var editing = target.closest('.is-editing');
    if (editing && editing === target && isWithheld(incomingCopy(detail.fragment, target.id))) {
      return;
    }
    if (editing) {
      detail.shouldSwap = false;
      if (editing !== target || isRealChange(target, incomingCopy(detail.fragment, target.id))) {
        markChangedElsewhere(editing);
      }
      return;
    }

    // An item that moved to another list (beforeend into the new one) while it is being
    // edited here: keep the form where it is, say it changed. (A form inside the target
    // itself, such as step 4's add form, is kept by the container rule below.)
    var frag = detail.fragment;
    if (frag && frag.nodeType === 1 && frag.querySelectorAll) {
      var arriving = frag.querySelectorAll('[id]');
      for (var a = 0; a < arriving.length; a++) {
        var live = document.getElementById(arriving[a].id);
        if (live && live.classList.contains('is-editing') && !target.contains(live)) {
          detail.shouldSwap = false;
          markChangedElsewhere(live);
          return;
        }
      }
    }

    // A container holding an item being edited is the target.
    var inside = target.querySelectorAll('.is-editing');
    if (!inside.length) return;
    var wholeReplace = detail.fragment && detail.fragment.nodeType === 11; // outerHTML
    var lost = false;
    var withheld = false;
    for (var i = 0; i < inside.length; i++) {
      var copy = incomingCopy(detail.fragment, inside[i].id);
      if (isWithheld(copy)) {
        withheld = true; // no longer allowed to see it: the form goes
        continue;
      }
      if (copy) {
        // htmx puts the live element (with the open form) in place of this copy.
        copy.setAttribute('hx-preserve', 'true');
        if (isRealChange(inside[i], copy)) markChangedElsewhere(inside[i]);
      } else if (wholeReplace) {
        lost = true;
      }
    }
    if (lost && !withheld) {
      detail.shouldSwap = false;
      for (var j = 0; j < inside.length; j++) markChangedElsewhere(inside[j]);
    }
  });

  /* ---- f. who is typing where: a light signal over the open socket, throttled ---- */

  var TYPING_EVERY_MS = 3000;
  var TYPING_SHOWN_MS = 6000;
  var lastTyped = {};

  function openSocket() {
    for (var i = 0; i < known.length; i++) {
      if (known[i].open && known[i].elt.isConnected) return known[i].wrapper;
    }
    return null;
  }

  document.addEventListener('input', function (evt) {
    var t = evt.target;
    if (!t || !t.closest || !t.matches('textarea, input[type="text"], input:not([type])')) return;
    var step = t.closest('[data-step]');
    if (!step) return;
    var where = 'step-' + step.getAttribute('data-step');
    var now = Date.now();
    if (lastTyped[where] && now - lastTyped[where] < TYPING_EVERY_MS) return;
    var socket = openSocket();
    if (!socket) return;
    lastTyped[where] = now;
    socket.send(JSON.stringify({ type: 'typing', where: where }));
  });

  function expireTyping() {
    var list = document.getElementById('kp-typing');
    if (!list) return;
    var now = Date.now();
    var items = list.querySelectorAll('li');
    for (var i = 0; i < items.length; i++) {
      var seen = toSeq(items[i].getAttribute('data-seen'));
      if (!seen) items[i].setAttribute('data-seen', String(now));
      else if (now - seen > TYPING_SHOWN_MS) items[i].remove();
    }
  }

  setInterval(expireTyping, 1000);

  /* ---- g. follow the step the chair put on screen (unless busy typing) ---- */

  var shownStep = null;

  function followChair() {
    var nav = document.getElementById('kp-steps');
    var follow = document.getElementById('kp-follow');
    if (!nav) return;
    var step = nav.getAttribute('data-on-screen');
    var sections = document.querySelectorAll('[data-step]');
    for (var i = 0; i < sections.length; i++) {
      sections[i].classList.toggle('is-on-screen', sections[i].getAttribute('data-step') === step);
    }
    if (shownStep === null || step === shownStep) {
      shownStep = step;
      return;
    }
    shownStep = step;
    if (!follow || !follow.checked) return;
    var active = document.activeElement;
    if (active && active.closest && active.closest('form') && active.matches('textarea, input, select')) {
      return; // never pull someone away from what they are writing
    }
    var section = document.getElementById('step-' + step);
    if (!section) return;
    var reduce = window.matchMedia && window.matchMedia('(prefers-reduced-motion: reduce)').matches;
    section.scrollIntoView({ behavior: reduce ? 'auto' : 'smooth', block: 'start' });
  }

  document.addEventListener('DOMContentLoaded', followChair);

  /* ---- b. highest seq seen, e. announcements by others ---- */

  document.addEventListener('htmx:wsAfterMessage', function (evt) {
    inWsMessage = false;
    var message = parseMessage(evt.detail && evt.detail.message);
    var elt = socketElement(evt);

    if (elt) {
      var last = toSeq(elt.getAttribute('data-last-seq'));
      var seq = 0;
      var inPage = document.getElementById('kp-seq');
      if (inPage) seq = toSeq(inPage.getAttribute('data-seq'));
      // Also read the message itself, in case the page has no #kp-seq to swap into.
      var inMessage = message.querySelector('[id="kp-seq"]');
      if (inMessage) seq = Math.max(seq, toSeq(inMessage.getAttribute('data-seq')));
      if (seq > last) elt.setAttribute('data-last-seq', String(seq));
    }

    expireTyping();
    followChair();

    var speakers = message.querySelectorAll('[data-kp-announce]');
    for (var i = 0; i < speakers.length; i++) {
      announce(speakers[i].getAttribute('data-kp-announce'));
    }
  });
})();
