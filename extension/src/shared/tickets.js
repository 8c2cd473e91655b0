// Single-use tickets that let a content script use the transfer frame
// (see transfer/transfer.js). Issued by the background, redeemed by the frame
// (through the background where the frame has no storage.session: Firefox).

export const TICKET_PREFIX = 'ticket:';
export const TICKET_TTL_MS = 60_000;

/**
 * Issues a ticket for one photo from a tab.
 * @param {number} tabId
 * @returns {Promise<string>}
 */
export async function issueTicket(tabId) {
  const ticket = crypto.randomUUID();
  await chrome.storage.session.set({ [`${TICKET_PREFIX}${ticket}`]: { tabId, at: Date.now() } });
  return ticket;
}

/**
 * Takes a ticket out of session storage; returns the tab it was issued for, or null.
 * @param {unknown} ticket
 * @returns {Promise<number | null>}
 */
export async function redeemTicket(ticket) {
  if (typeof ticket !== 'string' || !/^[0-9a-f-]{36}$/.test(ticket)) return null;
  const key = `${TICKET_PREFIX}${ticket}`;
  const stored = /** @type {{tabId: number, at: number} | undefined} */ ((await chrome.storage.session.get(key))[key]);
  if (!stored) return null;
  await chrome.storage.session.remove(key);
  if (Date.now() - Number(stored.at) > TICKET_TTL_MS) return null;
  return Number(stored.tabId);
}
