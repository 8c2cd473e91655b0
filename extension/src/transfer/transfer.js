// The fast path for photos and videos. Content scripts embed this extension page in a
// hidden frame and post it each photo as the page's own File (structured
// clone of a Blob: a reference, no byte copied); this page, which has the
// extension's origin and host permissions, streams it to the companion with
// fetch and posts the response Blob back over a private MessageChannel, again
// by reference (a 1 GB video is never read into this page's memory: fetch
// streams the File, and the response Blob stays in the browser's blob store,
// on disk when large). Runtime messaging would JSON-serialise the bytes: measured ~70
// ms per MB each way in Chromium 156. While the companion works, the job's
// progress is polled (background/jobs.js) and posted back; a 'cancel' from the
// content script aborts the upload and stops the job. build/bench/bench_extension.py --marks shows
// where the remaining milliseconds go.
//
// Web pages can post to this frame too, so each request must carry a
// single-use ticket that only a content script can get from the background
// (runtime messages are closed to pages); tickets live in
// chrome.storage.session, which pages and content scripts cannot read.

import '../shared/wire.js';
import { CLIENT_ERRORS, VeilFailure, fixFor } from '../shared/client-errors.js';
import { ERROR_CODES } from '../shared/error-codes.js';
import { SETTINGS_KEY, forgetRejectedToken, loadSettings, loadToken } from '../shared/settings.js';
import { TOKEN_CHANGE } from '../shared/secret-store.js';
import { cloak } from '../background/companion.js';
import { PreviewSkipped, buildPreview, storePreview } from '../background/previews.js';
import { TICKET_TTL_MS, redeemTicket } from '../shared/tickets.js';

const PREVIEW_DELAY_MS = 1500;

/**
 * @typedef {object} CloakRequest
 * @property {unknown} ticket
 * @property {string} name
 * @property {string} type
 * @property {Blob} photo  The page's File (a photo or a video), by reference.
 * @property {string} job  The X-Veil-Job id the content script drew (background/jobs.js).
 * @property {boolean} video  A video: the companion's time-out bounds it, and the preview is a frame.
 * @property {boolean} debug  Send timing marks back (content/timing.js).
 */

/**
 * Settings and token, read once when the frame loads (while the person is
 * still picking a file) and again only when they change: no storage read
 * waits on the photo's way.
 * @returns {Promise<{settings: import('../shared/settings.js').Settings, token: string}>}
 */
const readConfig = async () => ({ settings: await loadSettings(), token: await loadToken() });
let config = readConfig();
// A failed read is tried again by the next photo, not kept.
const currentConfig = () => config.catch(() => (config = readConfig()));
// In Firefox this frame has no storage.session and hears no change there: a
// token paired (or unpaired) after it loaded reaches it only through
// cloakWithCurrentToken() below.
chrome.storage.onChanged.addListener((changes, area) => {
  const tokenChanged = area === TOKEN_CHANGE.area && TOKEN_CHANGE.key in changes;
  if ((area === 'local' && SETTINGS_KEY in changes) || tokenChanged) config = readConfig();
});

// The companion refused the token, or there was none when the frame loaded.
/** @type {Set<string>} */
const AUTH_FAILURES = new Set([CLIENT_ERRORS.NOT_PAIRED, ERROR_CODES.UNAUTHORIZED]);

/**
 * Cloaks with the token read when the frame loaded; when there was none or
 * the companion refuses it, reads the token again and, if the person has
 * paired since, cloaks once more with the new one. Without this a tab opened
 * before pairing would fail every photo (and every Retry) until reloaded in
 * Firefox. A token the companion refused is forgotten only if still stored.
 * @param {Blob} photo
 * @param {string} type
 * @param {import('../shared/settings.js').Mode} mode
 * @param {import('../background/companion.js').CloakOptions & {token: string}} options
 * @returns {Promise<import('../background/companion.js').CloakOutcome>}
 */
async function cloakWithCurrentToken(photo, type, mode, options) {
  try {
    return await cloak(photo, type, mode, options);
  } catch (error) {
    if (!(error instanceof VeilFailure) || !AUTH_FAILURES.has(error.code)) throw error;
    config = readConfig();
    const { token } = await currentConfig();
    if (token && token !== options.token) return await cloak(photo, type, mode, { ...options, token });
    if (error.code === ERROR_CODES.UNAUTHORIZED) await forgetRejectedToken(options.token);
    throw error;
  }
}

/**
 * Takes the ticket out of session storage: here where the frame has
 * storage.session (Chrome), through the background where it has not (Firefox).
 * @param {unknown} ticket
 * @returns {Promise<number | null>}
 */
async function redeem(ticket) {
  if (chrome.storage.session) return redeemTicket(ticket);
  const answer = await chrome.runtime.sendMessage({ type: 'redeemTicket', payload: { ticket } });
  return typeof answer?.tabId === 'number' ? answer.tabId : null;
}

/**
 * Tickets the content script handed over ahead of its photo, being redeemed
 * or redeemed already: the photo then finds its ticket checked.
 * @type {Map<string, Promise<number | null>>}
 */
const prepared = new Map();

/** @param {string} ticket */
function prepare(ticket) {
  if (prepared.has(ticket)) return;
  const tabId = redeem(ticket).catch(() => null);
  prepared.set(ticket, tabId);
  // Anything posted here (pages can too) that is no live ticket is forgotten at once.
  void tabId.then((id) => {
    if (id === null) prepared.delete(ticket);
  });
  setTimeout(() => prepared.delete(ticket), TICKET_TTL_MS);
}

/**
 * The tab a ticket was issued for, or null; each ticket works once.
 * @param {unknown} ticket
 * @returns {Promise<number | null>}
 */
function checkTicket(ticket) {
  const early = typeof ticket === 'string' ? prepared.get(ticket) : undefined;
  if (!early) return redeem(ticket);
  prepared.delete(/** @type {string} */ (ticket));
  return early;
}

/**
 * @param {MessagePort} reply
 * @param {CloakRequest} request
 */
async function handle(reply, request) {
  const startedAt = performance.now();
  /** @type {Array<[string, number]> | undefined} */
  const marks = request.debug ? [] : undefined;
  /** @param {string} stage */
  const mark = (stage) => marks?.push([stage, performance.timeOrigin + performance.now()]);
  mark('frame:received');
  const [tabId, { settings, token }] = await Promise.all([checkTicket(request.ticket), currentConfig()]);
  mark('frame:redeemed');
  if (tabId === null) {
    reply.postMessage({ kind: 'error', code: 'forbidden_origin', message: 'Veil refused an unauthorised request.', fix: '' });
    return;
  }
  const { mode, port } = settings;
  // The content script's Cancel (the person, or a later pick in the same input).
  const cancel = new AbortController();
  reply.onmessage = (event) => {
    if (event.data?.kind === 'cancel') cancel.abort();
  };
  /** @param {import('../background/jobs.js').JobStatus | null} status */
  const onProgress = (status) => {
    // Also a sign of life: the content script's time-out counts from the last one.
    reply.postMessage({ kind: 'progress', progress: status?.progress ?? null, stage: status?.stage ?? null, state: status?.state ?? null });
  };
  let outcome;
  try {
    outcome = await cloakWithCurrentToken(request.photo, request.type, mode, {
      token,
      port,
      mark,
      job: request.job,
      signal: cancel.signal,
      onProgress,
      video: request.video,
    });
  } catch (error) {
    const failure = error instanceof VeilFailure ? error : new VeilFailure(CLIENT_ERRORS.BAD_RESPONSE, String(error));
    reply.postMessage({ kind: 'error', code: failure.code, message: failure.message, fix: fixFor(failure.code, port), marks });
    return;
  }
  mark('frame:reply');
  // The response Blob as it is: the content script wraps it in a File without reading it.
  reply.postMessage({
    kind: 'result',
    type: outcome.type,
    faces: outcome.faces,
    seconds: outcome.seconds,
    ssim: outcome.ssim,
    blob: outcome.body,
    marks,
  });
  reply.close();
  if (outcome.faces === 0 || tabId < 0) return;
  // A video's preview waits too (decoding two frames of it is small, but the page's upload is not).
  const totalSeconds = (performance.now() - startedAt) / 1000;
  // Decoding two full-size photos for the preview competes for the CPU with the
  // page taking its file: let the page go first.
  await new Promise((resolve) => setTimeout(resolve, PREVIEW_DELAY_MS));
  try {
    const preview = await buildPreview({
      name: request.name,
      original: request.photo,
      cloaked: outcome.body,
      faces: outcome.faces,
      ssim: outcome.ssim,
      faceSsimulacra2: outcome.faceSsimulacra2,
      seconds: outcome.seconds,
      totalSeconds,
      boxes: outcome.boxes,
      profiles: outcome.profiles,
      video: request.video,
      faceFrames: outcome.faceFrames,
    });
    // Stored here where the frame has storage.session (Chrome), by the background where not (Firefox).
    if (chrome.storage.session) await storePreview(tabId, preview);
    else await chrome.runtime.sendMessage({ type: 'storePreview', payload: { tabId, preview } });
  } catch (error) {
    if (!(error instanceof PreviewSkipped)) console.warn('Veil: could not build the preview', error);
  }
}

/**
 * @param {MessagePort} reply
 * @param {CloakRequest} request
 */
async function handleSafely(reply, request) {
  try {
    await handle(reply, request);
  } catch (error) {
    // The frame could not do its job here (e.g. blocked storage or messaging):
    // the content script then uses the background Port instead.
    reply.postMessage({ kind: 'error', code: 'bridge_failed', message: String(error), fix: '' });
  }
}

window.addEventListener('message', (event) => {
  const [reply] = event.ports;
  const data = event.data;
  if (data?.kind === 'prepare' && typeof data.ticket === 'string') {
    prepare(data.ticket);
    return;
  }
  const isBlob = /^\[object (Blob|File)\]$/.test(Object.prototype.toString.call(data?.photo));
  if (!reply || !data || data.kind !== 'cloak' || !isBlob) return;
  // At once: the content script falls back to the Port when this does not come within a second.
  reply.postMessage({ kind: 'accepted' });
  void handleSafely(reply, {
    ticket: data.ticket,
    name: String(data.name),
    type: String(data.type),
    photo: data.photo,
    job: String(data.job ?? ''),
    video: data.video === true,
    debug: data.debug === true,
  });
});
