// Requests to release an original photo (src/content/prompt.js, "Upload
// original…"): each opens Veil's confirmation window (src/confirm/), and only
// the answer given there releases the photo. At most one per tab; a second
// one while the first is open is refused. Kept in memory only: if the worker
// stops meanwhile, the content script's message fails and nothing is released.

import { siteOf } from '../shared/settings.js';

/**
 * @typedef {object} OriginalRequest
 * @property {number} tabId
 * @property {number} windowId
 * @property {string[]} names
 * @property {string} site  From the tab's own URL, never from the page.
 * @property {string} reason
 * @property {(confirmed: boolean) => void} settle
 */

/** @type {Map<string, OriginalRequest>} */
const pending = new Map();

/**
 * @param {string} id
 * @param {boolean} confirmed
 */
function settle(id, confirmed) {
  const request = pending.get(id);
  if (!request) return false;
  pending.delete(id);
  request.settle(confirmed);
  return true;
}

chrome.windows?.onRemoved.addListener((windowId) => {
  for (const [id, request] of pending) if (request.windowId === windowId) settle(id, false);
});

/**
 * Opens the confirmation window and waits for the person's answer.
 * @param {{names?: unknown, reason?: unknown}} payload
 * @param {chrome.runtime.MessageSender} sender  A content script in a tab.
 * @returns {Promise<{confirmed: boolean}>}
 */
export async function confirmOriginal(payload, sender) {
  const tabId = sender.tab?.id;
  if (tabId === undefined) return { confirmed: false };
  for (const request of pending.values()) if (request.tabId === tabId) return { confirmed: false };
  const id = crypto.randomUUID();
  const names = (Array.isArray(payload.names) ? payload.names : []).slice(0, 20).map((name) => String(name).slice(0, 200));
  /** @type {Promise<boolean>} */
  const answered = new Promise((resolve) => {
    pending.set(id, {
      tabId,
      windowId: -1,
      names,
      site: siteOf(sender.tab?.url) || 'this site',
      reason: String(payload.reason ?? '').slice(0, 400),
      settle: resolve,
    });
  });
  try {
    const created = await chrome.windows.create({
      url: chrome.runtime.getURL(`src/confirm/confirm.html?id=${id}`),
      type: 'popup',
      width: 500,
      height: 340,
      focused: true,
    });
    const request = pending.get(id);
    if (request) request.windowId = created?.id ?? -1;
  } catch (error) {
    console.warn('Veil: could not open the confirmation window', error);
    settle(id, false);
  }
  return { confirmed: await answered };
}

/**
 * What the confirmation window shows.
 * @param {string} id
 */
export function originalRequest(id) {
  const request = pending.get(id);
  if (!request) throw new Error('This request is no longer open.');
  return { names: request.names, site: request.site, reason: request.reason };
}

/**
 * @param {string} id
 * @param {boolean} confirmed
 */
export function answerOriginal(id, confirmed) {
  return { settled: settle(id, confirmed === true) };
}
