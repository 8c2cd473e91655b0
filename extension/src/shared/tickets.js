// Single-use tickets that let a content script use the transfer frame
// (see transfer/transfer.js). Issued by the background, redeemed by the frame.

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
