// Gets photos cloaked: through the transfer frame (bridge.js, by reference,
// in Chrome and Firefox alike), or where that frame cannot be used through
// the background worker (one Port per photo, chunks, see wire.js). Also asks
// the background for the site switch (one runtime message, then cached).
// Content scripts cannot fetch the companion directly: their requests carry
// the page's origin and are subject to its CORS and private-network rules.
'use strict';

(() => {
  // Failures of the transfer frame after which the Port path is tried.
  const FALLBACK_CODES = new Set(['bridge_failed', 'companion_unreachable', 'forbidden_origin', 'transfer_failed']);
  // While the companion works, these keep the worker from being stopped as idle.
  const PING_MS = 10_000;

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
   * Sends one photo to the companion; resolves to the cloaked File (same
   * name, type and date as the original: only the pixels change). Uses the
   * transfer frame, and the background Port when the frame is unusable.
   * @param {File} file
   * @param {(fraction: number) => void} onProgress
   * @returns {Promise<CloakedFile>}
   */
  async function cloakFile(file, onProgress) {
    let answer;
    try {
      onProgress(0.1);
      answer = await veilContent.bridge.cloakBlob(file);
    } catch (error) {
      const code = /** @type {{code?: string}} */ (error)?.code;
      // Companion errors are final; a frame that could not do its job is not:
      // the Port path is slower but works wherever the extension runs.
      if (code && !FALLBACK_CODES.has(code)) throw error;
      veilContent.timing.mark(`port-fallback (${String(code)}: ${String(/** @type {Error} */ (error)?.message)})`);
      return cloakThroughPort(file, onProgress);
    }
    onProgress(1);
    // A File around the frame's Blob: refers to the same bytes, copies none.
    const cloaked = new File([answer.blob], file.name, { type: file.type || answer.type, lastModified: file.lastModified });
    veilContent.timing.mark('file-built');
    return { file: cloaked, faces: answer.faces, seconds: answer.seconds, ssim: answer.ssim };
  }

  /**
   * The fallback: base64 chunks on a runtime Port to the background worker.
   * @param {File} file
   * @param {(fraction: number) => void} onProgress
   * @returns {Promise<CloakedFile>}
   */
  function cloakThroughPort(file, onProgress) {
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
        action();
        port.disconnect();
      };

      port.onDisconnect.addListener(() => {
        settle(() => reject(failure('transfer_failed', 'The Veil background stopped while cloaking; try again.')));
      });
      port.onMessage.addListener((/** @type {ToContent} */ message) => {
        if (message.kind === 'error') {
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
      port.postMessage({ kind: 'begin', name: file.name, type: file.type, size: file.size, binary });
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
