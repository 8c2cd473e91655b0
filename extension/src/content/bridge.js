// Client of the transfer frame (src/transfer/transfer.js): one hidden
// extension frame per document, in a closed shadow root, receiving photos as
// transferred ArrayBuffers. Much faster than runtime messaging for large
// photos; when the frame cannot be used (blocked, or the companion cannot be
// reached from it), transport.js falls back to the background Port.
'use strict';

(() => {
  const LOAD_TIMEOUT_MS = 5000;
  // The companion's own time-out is 180 s; the frame gives up at 200 s.
  const ANSWER_TIMEOUT_MS = 210_000;
  const FRAME_URL = chrome.runtime.getURL('src/transfer/transfer.html');
  const FRAME_ORIGIN = new URL(FRAME_URL).origin;

  /** @type {Promise<Window> | null} */
  let ready = null;
  // Set once the frame proved unusable in this browser: no point paying for it again.
  let unusable = false;

  /** @param {unknown} value */
  const isArrayBuffer = (value) => Object.prototype.toString.call(value) === '[object ArrayBuffer]';

  /**
   * A failure of the frame itself (not of the companion): the caller falls back to the Port.
   * @param {string} message
   */
  const bridgeFailure = (message) => Object.assign(new Error(message), { code: 'bridge_failed', fix: '' });

  /** @returns {Promise<Window>} */
  function frame() {
    if (ready) return ready;
    ready = new Promise((resolve, reject) => {
      const host = document.createElement('div');
      host.setAttribute('style', 'all: initial !important; display: none !important');
      const root = host.attachShadow({ mode: 'closed' });
      const iframe = document.createElement('iframe');
      const timer = setTimeout(() => reject(bridgeFailure('the transfer frame did not load')), LOAD_TIMEOUT_MS);
      iframe.addEventListener('load', () => {
        clearTimeout(timer);
        if (iframe.contentWindow) resolve(iframe.contentWindow);
        else reject(bridgeFailure('the transfer frame has no window'));
      });
      iframe.src = FRAME_URL;
      root.append(iframe);
      (document.body ?? document.documentElement).append(host);
    });
    // A frame that failed (or that the page removed) is rebuilt on the next photo.
    ready.catch(() => {
      ready = null;
    });
    return ready;
  }

  /** @type {{ticket: Promise<string>, at: number} | null} */
  let spareTicket = null;

  /** @returns {Promise<string>} */
  async function requestTicket() {
    const answer = await chrome.runtime.sendMessage({ type: 'transferTicket', payload: {} });
    if (!answer || typeof answer.ticket !== 'string') throw bridgeFailure('no transfer ticket');
    return answer.ticket;
  }

  /** A ticket young enough to be redeemed (they live a minute), the spare one when possible. */
  function takeTicket() {
    const spare = spareTicket;
    spareTicket = null;
    if (spare && Date.now() - spare.at < 40_000) return spare.ticket;
    return requestTicket();
  }

  /**
   * Gets the frame and a ticket ready while the person is still choosing a
   * file (the picker is open, or a drag is over the page), so the photo does
   * not wait for them.
   */
  function warm() {
    if (unusable) return;
    frame().catch(() => {});
    if (!spareTicket || Date.now() - spareTicket.at >= 40_000) {
      const ticket = requestTicket();
      ticket.catch(() => {});
      spareTicket = { ticket, at: Date.now() };
    }
  }

  /**
   * Cloaks one photo through the transfer frame.
   * @param {File} file
   * @returns {Promise<{bytes: ArrayBuffer, type: string, faces: number, seconds: number | null, ssim: number | null}>}
   */
  async function cloakBytes(file) {
    if (unusable) throw bridgeFailure('the transfer frame is not usable here');
    const [target, ticket, bytes] = await Promise.all([frame(), takeTicket(), file.arrayBuffer()]);
    const channel = new MessageChannel();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        channel.port1.close();
        reject(Object.assign(new Error('The companion did not answer in time.'), { code: 'client_timeout', fix: '' }));
      }, ANSWER_TIMEOUT_MS);
      channel.port1.onmessage = (event) => {
        clearTimeout(timer);
        channel.port1.close();
        const data = event.data;
        // Firefox hands content scripts cross-compartment objects: check the brand, not instanceof.
        if (data?.kind === 'result' && isArrayBuffer(data.bytes)) resolve(data);
        else if (data?.kind === 'error' && data.code === 'bridge_failed') {
          unusable = true;
          reject(bridgeFailure(String(data.message)));
        } else if (data?.kind === 'error') reject(Object.assign(new Error(String(data.message)), { code: String(data.code), fix: String(data.fix ?? '') }));
        else reject(bridgeFailure('unexpected answer from the transfer frame'));
      };
      target.postMessage(
        { kind: 'cloak', ticket, name: file.name, type: file.type, bytes },
        FRAME_ORIGIN,
        [channel.port2, bytes],
      );
    });
  }

  veilContent.bridge = { cloakBytes, warm };
})();
