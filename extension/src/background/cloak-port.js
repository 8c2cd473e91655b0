// One Port per photo: the content script streams the original in base64
// chunks, this worker posts it to the companion and streams the cloaked file
// back the same way. Nothing here outlives the port, so a worker restart
// only fails the photos in flight (the content script then asks the person).

import { CLIENT_ERRORS, VeilFailure, fixFor } from '../shared/client-errors.js';
import { ERROR_CODES } from '../shared/error-codes.js';
import { forgetRejectedToken, loadSettings, loadToken } from '../shared/settings.js';
import { cloak } from './companion.js';
import { PreviewSkipped, recordPreview } from './previews.js';

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
  /** @type {{name: string, type: string, size: number, binary: boolean} | null} */
  let header = null;
  /** @type {Uint8Array[]} */
  let chunks = [];
  let received = 0;
  let closed = false;
  const startedAt = performance.now();
  port.onDisconnect.addListener(() => {
    closed = true;
    chunks = [];
  });

  port.onMessage.addListener((/** @type {ToWorker} */ message) => {
    if (message.kind === 'begin') {
      header = {
        name: String(message.name),
        type: String(message.type),
        size: Number(message.size),
        // Answer the way the content script sends: raw bytes only where the browser clones messages.
        binary: Boolean(message.binary) && veilWire.BINARY_MESSAGES,
      };
      chunks = [];
      received = 0;
    } else if (message.kind === 'chunk' && header) {
      const bytes = veilWire.chunkBytes(message);
      chunks.push(bytes);
      received += bytes.length;
    } else if (message.kind === 'end' && header) {
      const current = header;
      const original = new Blob(/** @type {BlobPart[]} */ (chunks), { type: current.type });
      chunks = [];
      if (received !== current.size) {
        const failure = new VeilFailure(CLIENT_ERRORS.TRANSFER_FAILED, `Received ${received} of ${current.size} bytes.`);
        post(port, { kind: 'error', code: failure.code, message: failure.message, fix: '' });
        return;
      }
      void finish(port, current, original, startedAt, () => closed);
    }
    // 'ping' only keeps the worker awake while the companion works.
  });
}

/**
 * @param {chrome.runtime.Port} port
 * @param {{name: string, type: string, size: number, binary: boolean}} header
 * @param {Blob} original
 * @param {number} startedAt
 * @param {() => boolean} isClosed
 */
async function finish(port, header, original, startedAt, isClosed) {
  let outcome;
  const { mode, port: companionPort } = await loadSettings();
  const token = await loadToken();
  try {
    outcome = await cloak(original, header.type, mode, { token });
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
    });
  } catch (error) {
    // A preview is a nicety: the upload itself already succeeded.
    if (!(error instanceof PreviewSkipped)) console.warn('Veil: could not build the preview', error);
  }
}
