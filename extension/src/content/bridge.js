// Client of the transfer frame (src/transfer/transfer.js): one hidden
// extension frame per document, in a closed shadow root, receiving each photo
// or video as the page's own File and answering with the cloak as a Blob
// (and, meanwhile, the job's progress; a 'cancel' back stops it). Blobs are
// structured-cloned as references (the bytes stay in the browser's blob store,
// or on disk for a picked file), so no byte of the photo is read or copied in
// the page: the frame's fetch streams it to the companion. Much faster than
// runtime messaging for large photos; when the frame cannot be used (blocked,
// or the companion cannot be reached from it), transport.js falls back to the
// background Port.
'use strict';

(() => {
  const LOAD_TIMEOUT_MS = 5000;
  // The companion's own time-out is 180 s; the frame gives up at 200 s. Counted from the
  // frame's last sign of life: while it polls the job (videos: minutes), it posts each poll.
  const ANSWER_TIMEOUT_MS = 210_000;
  // After a cancel, the port stays open this long so that the 'cancel' reaches the frame.
  const CANCEL_GRACE_MS = 2000;
  const FRAME_URL = chrome.runtime.getURL('src/transfer/transfer.html');
  const FRAME_ORIGIN = new URL(FRAME_URL).origin;

  // The frame answers each photo at once with 'accepted': past this, it is gone or stuck.
  const ACCEPT_TIMEOUT_MS = 1000;
  // How often a photo in flight checks that its frame is still in the document.
  const ALIVE_CHECK_MS = 250;

  /** @type {{host: HTMLElement, iframe: HTMLIFrameElement, ready: Promise<Window>} | null} */
  let current = null;
  // Set once the frame proved unusable in this browser: no point paying for it again.
  let unusable = false;
  // Developer switch {debug: {transport: 'port'}} in chrome.storage.local: always use the Port path.
  let forcePort = false;
  chrome.storage.local.get('debug').then(
    (stored) => (forcePort = /** @type {{transport?: string} | undefined} */ (stored.debug)?.transport === 'port'),
    () => {},
  );
  chrome.storage.onChanged.addListener((changes, area) => {
    if (area === 'local' && 'debug' in changes) forcePort = /** @type {{transport?: string} | undefined} */ (changes.debug.newValue)?.transport === 'port';
  });

  /** @param {unknown} value */
  const isBlob = (value) => /^\[object (Blob|File)\]$/.test(Object.prototype.toString.call(value));

  /**
   * A failure of the frame itself (not of the companion): the caller falls back to the Port.
   * @param {string} message
   */
  const bridgeFailure = (message) => Object.assign(new Error(message), { code: 'bridge_failed', fix: '' });

  /** Whether the frame built earlier is still in the document (a page may replace body or more). */
  const alive = () => Boolean(current && current.host.isConnected && current.iframe.isConnected && current.iframe.contentWindow);

  /** @returns {Promise<Window>} */
  function frame() {
    if (current && alive()) return current.ready;
    current?.host.remove();
    const host = document.createElement('div');
    host.setAttribute('style', 'all: initial !important; display: none !important');
    const root = host.attachShadow({ mode: 'closed' });
    const iframe = document.createElement('iframe');
    const ready = new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(bridgeFailure('the transfer frame did not load')), LOAD_TIMEOUT_MS);
      iframe.addEventListener('load', () => {
        clearTimeout(timer);
        if (iframe.contentWindow) resolve(iframe.contentWindow);
        else reject(bridgeFailure('the transfer frame has no window'));
      });
    });
    iframe.src = FRAME_URL;
    root.append(iframe);
    // On the root element, not in body: single-page apps replace body wholesale.
    document.documentElement.append(host);
    const built = { host, iframe, ready };
    current = built;
    // A frame that failed is rebuilt on the next photo.
    ready.catch(() => {
      if (current === built) current = null;
    });
    return ready;
  }

  /**
   * A ticket fetched ahead of the photo, already handed to the frame it was
   * fetched for (which redeems it at once, so the photo does not wait for it).
   * @type {{ticket: Promise<string>, at: number, frame: Promise<Window>} | null}
   */
  let spareTicket = null;
  // Younger than the ticket's own minute of life, with a margin.
  const SPARE_MS = 40_000;

  /** @returns {Promise<string>} */
  async function requestTicket() {
    const answer = await chrome.runtime.sendMessage({ type: 'transferTicket', payload: {} });
    if (!answer || typeof answer.ticket !== 'string') throw bridgeFailure('no transfer ticket');
    return answer.ticket;
  }

  /**
   * A ticket young enough to be redeemed (they live a minute): the spare one
   * when it was prepared for the frame in use now.
   * @param {Promise<Window>} target
   */
  function takeTicket(target) {
    const spare = spareTicket;
    spareTicket = null;
    if (spare && spare.frame === target && Date.now() - spare.at < SPARE_MS) return spare.ticket;
    return requestTicket();
  }

  /**
   * Gets the frame and a ticket ready while the person is still choosing a
   * file (the picker is open, or a drag is over the page), so the photo does
   * not wait for them; the frame redeems the ticket meanwhile.
   */
  function warm() {
    if (unusable || forcePort) return;
    const target = frame();
    target.catch(() => {});
    if (spareTicket && spareTicket.frame === target && Date.now() - spareTicket.at < SPARE_MS) return;
    const ticket = requestTicket();
    ticket.catch(() => {});
    spareTicket = { ticket, at: Date.now(), frame: target };
    Promise.all([target, ticket]).then(
      ([frameWindow, value]) => frameWindow.postMessage({ kind: 'prepare', ticket: value }, FRAME_ORIGIN),
      () => {},
    );
  }

  /**
   * Cloaks one photo or video through the transfer frame.
   * @param {File} file
   * @param {{job: string, video: boolean, signal: AbortSignal, onProgress: (status: JobProgress) => void}} options
   * @returns {Promise<{blob: Blob, type: string, faces: number, seconds: number | null, ssim: number | null}>}
   */
  async function cloakBlob(file, options) {
    if (unusable) throw bridgeFailure('the transfer frame is not usable here');
    if (forcePort) throw bridgeFailure('the Port path is forced by the debug setting');
    const { timing } = veilContent;
    timing.mark('bridge-start');
    const target = frame();
    const used = current;
    const [frameWindow, ticket] = await Promise.all([target, takeTicket(target)]);
    timing.mark('frame-ready');
    const channel = new MessageChannel();
    return new Promise((resolve, reject) => {
      /** @param {Error} error */
      const fail = (error) => {
        stop();
        reject(error);
      };
      const timeOut = () => fail(Object.assign(new Error('The companion did not answer in time.'), { code: 'client_timeout', fix: '' }));
      let timer = setTimeout(timeOut, ANSWER_TIMEOUT_MS);
      const onCancel = () => {
        // The frame aborts the upload and DELETEs the job; its answer is not waited for.
        channel.port1.postMessage({ kind: 'cancel' });
        const port = channel.port1;
        channel.port1.onmessage = null;
        setTimeout(() => port.close(), CANCEL_GRACE_MS);
        clearTimeout(timer);
        clearTimeout(acceptTimer);
        clearInterval(aliveTimer);
        options.signal.removeEventListener('abort', onCancel);
        reject(Object.assign(new Error('Cancelled: nothing was given to the page.'), { code: 'cancelled', fix: '' }));
      };
      let accepted = false;
      const acceptTimer = setTimeout(() => {
        if (!accepted) fail(bridgeFailure('the transfer frame did not take the photo'));
      }, ACCEPT_TIMEOUT_MS);
      // The page may remove the frame while the companion works: fall back at once, not after minutes.
      const aliveTimer = setInterval(() => {
        if (current !== used || !alive()) fail(bridgeFailure('the transfer frame was removed'));
      }, ALIVE_CHECK_MS);
      function stop() {
        clearTimeout(timer);
        clearTimeout(acceptTimer);
        clearInterval(aliveTimer);
        options.signal.removeEventListener('abort', onCancel);
        channel.port1.close();
      }
      channel.port1.onmessage = (event) => {
        const data = event.data;
        if (data?.kind === 'accepted') {
          accepted = true;
          return;
        }
        if (data?.kind === 'progress') {
          clearTimeout(timer);
          timer = setTimeout(timeOut, ANSWER_TIMEOUT_MS);
          const progress = typeof data.progress === 'number' ? Math.min(1, Math.max(0, data.progress)) : null;
          options.onProgress({ progress, stage: typeof data.stage === 'string' ? data.stage : null });
          return;
        }
        stop();
        timing.mark('answer');
        timing.markAll(data?.marks);
        // Firefox hands content scripts cross-compartment objects: check the brand, not instanceof.
        if (data?.kind === 'result' && isBlob(data.blob)) resolve(data);
        else if (data?.kind === 'error' && data.code === 'bridge_failed') {
          unusable = true;
          reject(bridgeFailure(String(data.message)));
        } else if (data?.kind === 'error') reject(Object.assign(new Error(String(data.message)), { code: String(data.code), fix: String(data.fix ?? '') }));
        else reject(bridgeFailure('unexpected answer from the transfer frame'));
      };
      frameWindow.postMessage(
        // The File itself: a reference to its bytes, not a copy of them (a 1 GB video too).
        { kind: 'cloak', ticket, name: file.name, type: file.type, photo: file, job: options.job, video: options.video, debug: timing.enabled() },
        FRAME_ORIGIN,
        [channel.port2],
      );
      timing.mark('posted');
      if (options.signal.aborted) onCancel();
      else options.signal.addEventListener('abort', onCancel, { once: true });
    });
  }

  veilContent.bridge = { cloakBlob, warm };
})();
