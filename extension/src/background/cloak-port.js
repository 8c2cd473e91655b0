// One Port per photo (or small video, up to PORT_MAX_BYTES): the content
// script streams the original in base64 chunks, this worker posts it to the
// companion and streams the cloaked file back the same way, with the job's
// progress meanwhile; 'cancel' (or the port closing) stops the job. Nothing here outlives the port, so a worker restart
// only fails the photos in flight (the content script then asks the person).

import { CLIENT_ERRORS, VeilFailure, fixFor } from '../shared/client-errors.js';
import { ERROR_CODES } from '../shared/error-codes.js';
import { forgetRejectedToken, loadSettings, loadToken } from '../shared/settings.js';
import { cloak } from './companion.js';
import { PreviewSkipped, recordPreview } from './previews.js';

// The content script sends nothing larger here (transport.js): the whole file sits in
// this worker's memory until it is sent on.
const PORT_MAX_BYTES = 64 * 1024 * 1024;

/**
 * @typedef {{name: string, type: string, size: number, binary: boolean, job: string, video: boolean}} Header
 */

/**
 * @param {chrome.runtime.Port} port
 * @param {ToContent} message
 */
function post(port, message) {
  port.postMessage(message);
}

/**
 * @param {chrome.runtime.Port} port
 */
export function serveCloakPort(port) {
  /** @type {Header | null} */
  let header = null;
  /** @type {Uint8Array[]} */
  let chunks = [];
  let received = 0;
  let closed = false;
  const startedAt = performance.now();
  // The content script's Cancel, or the port closing under a pending cloak (page gone).
  const cancel = new AbortController();
  port.onDisconnect.addListener(() => {
    closed = true;
    chunks = [];
    cancel.abort();
  });

  port.onMessage.addListener((/** @type {ToWorker} */ message) => {
    if (message.kind === 'cancel') {
      cancel.abort();
    } else if (message.kind === 'begin') {
      header = {
        name: String(message.name),
        type: String(message.type),
        size: Number(message.size),
        // Answer the way the content script sends: raw bytes only where the browser clones messages.
        binary: Boolean(message.binary) && veilWire.BINARY_MESSAGES,
        job: String(message.job ?? ''),
        video: message.video === true,
      };
      if (header.size > PORT_MAX_BYTES) {
        // The content script never sends such a file here; a page speaking for it gets nothing.
        post(port, { kind: 'error', code: CLIENT_ERRORS.TRANSFER_FAILED, message: 'Too large for the Port path.', fix: '' });
        header = null;
        return;
      }
      chunks = [];
      received = 0;
    } else if (message.kind === 'chunk' && header) {
      const bytes = veilWire.chunkBytes(message);
      received += bytes.length;
      if (received > header.size) {
        header = null;
        chunks = [];
        post(port, { kind: 'error', code: CLIENT_ERRORS.TRANSFER_FAILED, message: 'More bytes than announced.', fix: '' });
        return;
      }
      chunks.push(bytes);
    } else if (message.kind === 'end' && header) {
      const current = header;
      const original = new Blob(/** @type {BlobPart[]} */ (chunks), { type: current.type });
      chunks = [];
      if (received !== current.size) {
        const failure = new VeilFailure(CLIENT_ERRORS.TRANSFER_FAILED, `Received ${received} of ${current.size} bytes.`);
        post(port, { kind: 'error', code: failure.code, message: failure.message, fix: '' });
        return;
      }
      void finish(port, current, original, startedAt, () => closed, cancel.signal);
    }
    // 'ping' only keeps the worker awake while the companion works.
  });
}

/**
 * @param {chrome.runtime.Port} port
 * @param {Header} header
 * @param {Blob} original
 * @param {number} startedAt
 * @param {() => boolean} isClosed
 * @param {AbortSignal} signal
 */
async function finish(port, header, original, startedAt, isClosed, signal) {
  let outcome;
  const { mode, port: companionPort } = await loadSettings();
  const token = await loadToken();
  /** @param {import('./jobs.js').JobStatus | null} status */
  const onProgress = (status) => {
    if (!isClosed()) post(port, { kind: 'progress', progress: status?.progress ?? null, stage: status?.stage ?? null });
  };
  try {
    outcome = await cloak(original, header.type, mode, { token, job: header.job, signal, onProgress, video: header.video });
  } catch (error) {
    const failure =
      error instanceof VeilFailure ? error : new VeilFailure(CLIENT_ERRORS.BAD_RESPONSE, String(error));
    // A rejected token means the pairing is gone: forget it so the popup says "not paired".
    if (failure.code === ERROR_CODES.UNAUTHORIZED) await forgetRejectedToken(token);
    if (!isClosed()) {
      post(port, { kind: 'error', code: failure.code, message: failure.message, fix: fixFor(failure.code, companionPort) });
    }
    return;
  }
  if (isClosed()) return;
  post(port, {
    kind: 'result',
    type: outcome.type,
    size: outcome.body.size,
    faces: outcome.faces,
    seconds: outcome.seconds,
    ssim: outcome.ssim,
  });
  const cloaked = outcome.body;
  await veilWire.sendChunks(port, cloaked, header.binary);
  post(port, { kind: 'end' });
  const tabId = port.sender?.tab?.id;
  if (tabId === undefined || outcome.faces === 0) return;
  try {
    await recordPreview(tabId, {
      name: header.name,
      original,
      cloaked,
      faces: outcome.faces,
      ssim: outcome.ssim,
      faceSsimulacra2: outcome.faceSsimulacra2,
      seconds: outcome.seconds,
      totalSeconds: (performance.now() - startedAt) / 1000,
      boxes: outcome.boxes,
      profiles: outcome.profiles,
      video: header.video,
      faceFrames: outcome.faceFrames,
    });
  } catch (error) {
    // A preview is a nicety: the upload itself already succeeded.
    if (!(error instanceof PreviewSkipped)) console.warn('Veil: could not build the preview', error);
  }
}
