// Gets photos and videos cloaked: through the transfer frame (bridge.js, by
// reference, in Chrome and Firefox alike), or where that frame cannot be used
// through the background worker (one Port per file, chunks, see wire.js; not
// for files over PORT_MAX_BYTES, which fail closed). Each upload carries a
// random job id (X-Veil-Job) for its progress and its cancel. Also asks
// the background for the site switch (one runtime message, then cached).
// Content scripts cannot fetch the companion directly: their requests carry
// the page's origin and are subject to its CORS and private-network rules.
'use strict';

(() => {
  // Failures of the transfer frame after which the Port path is tried.
  const FALLBACK_CODES = new Set(['bridge_failed', 'companion_unreachable', 'forbidden_origin', 'transfer_failed']);
  // While the companion works, these keep the worker from being stopped as idle.
  const PING_MS = 10_000;
  // The Port path holds the whole file in the background's memory and sends it
  // as messages (base64 in Chrome): fine for photos, not for a large video, which
  // fails closed instead (the prompt; the transfer frame streams any size).
  const PORT_MAX_BYTES = 64 * 1024 * 1024;

  /** @type {SiteState | null} */
  let cachedSite = null;
  /** @type {Promise<SiteState> | null} */
  let pendingSite = null;

  /** @returns {Promise<SiteState>} */
  function siteState() {
    if (cachedSite) return Promise.resolve(cachedSite);
    pendingSite ??= chrome.runtime
      .sendMessage({ type: 'siteState', payload: {} })
      .then((/** @type {SiteState | {error: FailureInfo}} */ answer) => {
        pendingSite = null;
        // Without an answer, assume on: asking is safer than uploading the original.
        cachedSite = answer && 'enabled' in answer ? answer : { host: location.hostname, enabled: true };
        return cachedSite;
      })
      .catch(() => {
        pendingSite = null;
        return { host: location.hostname, enabled: true };
      });
    return pendingSite;
  }

  chrome.storage.onChanged.addListener((changes, area) => {
    if (area === 'local' && 'settings' in changes) {
      cachedSite = null;
      void siteState();
    }
  });
  void siteState();

  /**
   * @param {string} code
   * @param {string} message
   * @param {string} [fix]
   * @returns {Error & FailureInfo}
   */
  function failure(code, message, fix = '') {
    return Object.assign(new Error(message), { code, message, fix });
  }

  /**
   * A fresh X-Veil-Job id (background/jobs.js): 32 characters of [0-9a-f].
   * @returns {string}
   */
  function newJobId() {
    return Array.from(crypto.getRandomValues(new Uint8Array(16)), (byte) => byte.toString(16).padStart(2, '0')).join('');
  }

  /**
   * Sends one photo or video to the companion; resolves to the cloaked File
   * (same name, type and date as the original: only the pixels change). Uses
   * the transfer frame, and the background Port when the frame is unusable
   * (never for a large file: the Port copies every byte through messages).
   * @param {File} file
   * @param {{onProgress: (fraction: number, percent: number | null) => void, signal: AbortSignal}} options
   * @returns {Promise<CloakedFile>}
   */
  async function cloakFile(file, options) {
    const { onProgress, signal } = options;
    const job = newJobId();
    const video = veilContent.fileKinds.isVideo(file);
    veilContent.timing.mark(`job:${job}`);
    /** @param {JobProgress} status */
    const onJob = (status) => {
      if (status.progress === null) return;
      onProgress(0.1 + 0.9 * status.progress, Math.floor(100 * status.progress));
    };
    let answer;
    try {
      onProgress(0.1, null);
      answer = await veilContent.bridge.cloakBlob(file, { job, video, signal, onProgress: onJob });
    } catch (error) {
      const code = /** @type {{code?: string}} */ (error)?.code;
      // Companion errors are final; a frame that could not do its job is not:
      // the Port path is slower but works wherever the extension runs.
      if (signal.aborted || (code && !FALLBACK_CODES.has(code))) throw error;
      veilContent.timing.mark(`port-fallback (${String(code)}: ${String(/** @type {Error} */ (error)?.message)})`);
      if (file.size > PORT_MAX_BYTES) {
        // The frame worked but the companion did not answer it: say that, not "too large".
        if (code === 'companion_unreachable') throw error;
        const mb = Math.round(file.size / 1e6);
        throw failure(
          'transfer_failed',
          `Veil cannot send this ${mb} MB ${video ? 'video' : 'file'} to the companion on this page: its transfer frame is blocked here, and the fallback copies every byte through messages (up to ${Math.round(PORT_MAX_BYTES / 1e6)} MB).`,
          'Reload the page and try again; if it keeps failing, cloak the file with `veil cloak` and upload the result.',
        );
      }
      return cloakThroughPort(file, { job, video, onProgress, onJob, signal });
    }
    onProgress(1, null);
    // A File around the frame's Blob: refers to the same bytes, copies none.
    const cloaked = new File([answer.blob], file.name, { type: file.type || answer.type, lastModified: file.lastModified });
    veilContent.timing.mark('file-built');
    return { file: cloaked, faces: answer.faces, seconds: answer.seconds, ssim: answer.ssim };
  }

  /**
   * The fallback: base64 chunks on a runtime Port to the background worker.
   * @param {File} file
   * @param {{job: string, video: boolean, onProgress: (fraction: number, percent: number | null) => void,
   *   onJob: (status: JobProgress) => void, signal: AbortSignal}} options
   * @returns {Promise<CloakedFile>}
   */
  function cloakThroughPort(file, options) {
    const { onJob, signal } = options;
    /** @param {number} fraction */
    const onProgress = (fraction) => options.onProgress(fraction, null);
    return new Promise((resolve, reject) => {
      let port;
      try {
        port = chrome.runtime.connect({ name: veilWire.PORT_NAME });
      } catch (error) {
        // The extension was reloaded or removed under this page.
        reject(failure('transfer_failed', `Veil cannot reach its background: ${String(error)}`));
        return;
      }
      /** @type {Uint8Array[]} */
      const chunks = [];
      /** @type {(ToContent & {kind: 'result'}) | null} */
      let result = null;
      let received = 0;
      let settled = false;
      const ping = setInterval(() => port.postMessage({ kind: 'ping' }), PING_MS);

      /** @param {() => void} action */
      const settle = (action) => {
        if (settled) return;
        settled = true;
        clearInterval(ping);
        signal.removeEventListener('abort', onCancel);
        action();
        port.disconnect();
      };

      // Cancel: the background aborts the upload and DELETEs the job on 'cancel' (or when
      // the port closes).
      const onCancel = () => {
        port.postMessage({ kind: 'cancel' });
        settle(() => reject(failure('cancelled', 'Cancelled: nothing was given to the page.')));
      };
      if (signal.aborted) {
        onCancel();
        return;
      }
      signal.addEventListener('abort', onCancel, { once: true });
      port.onDisconnect.addListener(() => {
        settle(() => reject(failure('transfer_failed', 'The Veil background stopped while cloaking; try again.')));
      });
      port.onMessage.addListener((/** @type {ToContent} */ message) => {
        if (message.kind === 'progress') {
          onJob({ progress: typeof message.progress === 'number' ? message.progress : null, stage: message.stage ?? null });
        } else if (message.kind === 'error') {
          settle(() => reject(failure(message.code, message.message, message.fix)));
        } else if (message.kind === 'result') {
          result = message;
          onProgress(0.7);
        } else if (message.kind === 'chunk' && result) {
          const bytes = veilWire.chunkBytes(message);
          chunks.push(bytes);
          received += bytes.length;
          onProgress(0.7 + (0.3 * received) / Math.max(1, result.size));
        } else if (message.kind === 'end' && result) {
          const done = result;
          if (received !== done.size) {
            settle(() => reject(failure('transfer_failed', `Got ${received} of ${done.size} bytes back.`)));
            return;
          }
          // Same name, type and date as the original: only the pixels change.
          const cloaked = new File(/** @type {BlobPart[]} */ (chunks), file.name, {
            type: file.type || done.type,
            lastModified: file.lastModified,
          });
          settle(() => resolve({ file: cloaked, faces: done.faces, seconds: done.seconds, ssim: done.ssim }));
        }
      });

      const binary = veilWire.BINARY_MESSAGES;
      port.postMessage({ kind: 'begin', name: file.name, type: file.type, size: file.size, binary, job: options.job, video: options.video });
      veilWire
        .sendChunks(port, file, binary)
        .then(() => {
          if (settled) return;
          port.postMessage({ kind: 'end' });
          onProgress(0.2);
        })
        .catch((error) => settle(() => reject(failure('transfer_failed', `Could not read the file: ${String(error)}`))));
    });
  }

  veilContent.transport = { cloakFile, siteState, currentSiteState: () => cachedSite };
})();
