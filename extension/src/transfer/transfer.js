// The fast path for photo bytes. Content scripts embed this extension page in
// a hidden frame and post each photo to it as a transferred ArrayBuffer
// (zero-copy structured clone); this page, which has the extension's origin
// and host permissions, posts it to the companion and transfers the cloak
// back over a private MessageChannel. Runtime messaging would JSON-serialise
// the bytes: measured ~70 ms per MB each way in Chromium 156, against a few
// ms for the whole photo here (build/bench_extension.py).
//
// Web pages can post to this frame too, so each request must carry a
// single-use ticket that only a content script can get from the background
// (runtime messages are closed to pages); tickets live in
// chrome.storage.session, which pages and content scripts cannot read.

import '../shared/wire.js';
import { CLIENT_ERRORS, VeilFailure, fixFor } from '../shared/client-errors.js';
import { loadSettings, saveToken } from '../shared/settings.js';
import { cloak } from '../background/companion.js';
import { recordPreview } from '../background/previews.js';
import { TICKET_PREFIX, TICKET_TTL_MS } from '../shared/tickets.js';

const PREVIEW_DELAY_MS = 1500;

/**
 * Takes a ticket out of session storage; returns the tab it was issued for, or null.
 * @param {unknown} ticket
 * @returns {Promise<number | null>}
 */
async function redeem(ticket) {
  if (typeof ticket !== 'string' || !/^[0-9a-f-]{36}$/.test(ticket)) return null;
  const key = `${TICKET_PREFIX}${ticket}`;
  const stored = /** @type {{tabId: number, at: number} | undefined} */ ((await chrome.storage.session.get(key))[key]);
  if (!stored) return null;
  await chrome.storage.session.remove(key);
  if (Date.now() - Number(stored.at) > TICKET_TTL_MS) return null;
  return Number(stored.tabId);
}

/**
 * @param {MessagePort} reply
 * @param {{ticket: unknown, name: string, type: string, bytes: ArrayBuffer}} request
 */
async function handle(reply, request) {
  const startedAt = performance.now();
  const tabId = await redeem(request.ticket);
  if (tabId === null) {
    reply.postMessage({ kind: 'error', code: 'forbidden_origin', message: 'Veil refused an unauthorised request.', fix: '' });
    return;
  }
  const { mode, port } = await loadSettings();
  let outcome;
  try {
    outcome = await cloak(new Blob([request.bytes], { type: request.type }), request.type, mode);
  } catch (error) {
    const failure = error instanceof VeilFailure ? error : new VeilFailure(CLIENT_ERRORS.BAD_RESPONSE, String(error));
    if (failure.code === 'unauthorized') await saveToken('');
    reply.postMessage({ kind: 'error', code: failure.code, message: failure.message, fix: fixFor(failure.code, port) });
    return;
  }
  const bytes = await outcome.body.arrayBuffer();
  reply.postMessage(
    { kind: 'result', type: outcome.type, faces: outcome.faces, seconds: outcome.seconds, ssim: outcome.ssim, bytes },
    [bytes],
  );
  reply.close();
  if (outcome.faces === 0 || tabId < 0) return;
  const totalSeconds = (performance.now() - startedAt) / 1000;
  // Decoding two full-size photos for the preview competes for the CPU with the
  // page taking its file: let the page go first.
  await new Promise((resolve) => setTimeout(resolve, PREVIEW_DELAY_MS));
  try {
    await recordPreview(tabId, {
      name: request.name,
      original: new Blob([request.bytes], { type: request.type }),
      cloaked: outcome.body,
      faces: outcome.faces,
      ssim: outcome.ssim,
      seconds: outcome.seconds,
      totalSeconds,
      boxes: outcome.boxes,
    });
  } catch (error) {
    console.warn('Veil: could not build the preview', error);
  }
}

/**
 * @param {MessagePort} reply
 * @param {{ticket: unknown, name: string, type: string, bytes: ArrayBuffer}} request
 */
async function handleSafely(reply, request) {
  try {
    await handle(reply, request);
  } catch (error) {
    // E.g. Firefox gives extension frames inside web pages no storage.session:
    // the content script then uses the background Port instead.
    reply.postMessage({ kind: 'error', code: 'bridge_failed', message: String(error), fix: '' });
  }
}

window.addEventListener('message', (event) => {
  const [reply] = event.ports;
  const data = event.data;
  const isArrayBuffer = Object.prototype.toString.call(data?.bytes) === '[object ArrayBuffer]';
  if (!reply || !data || data.kind !== 'cloak' || !isArrayBuffer) return;
  void handleSafely(reply, { ticket: data.ticket, name: String(data.name), type: String(data.type), bytes: data.bytes });
});
