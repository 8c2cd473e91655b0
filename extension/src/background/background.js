// Background entry point (Chrome service worker, Firefox event page). It only
// wires events to modules: every piece of state is in chrome.storage, so the
// browser may stop this worker between any two events.

import '../shared/wire.js';
import { dispatch, senderKind } from './handlers.js';
import { serveCloakPort } from './cloak-port.js';
import { forgetTab } from './previews.js';

chrome.runtime.onMessage.addListener((message, sender, sendResponse) => {
  dispatch(message, sender).then(sendResponse);
  return true; // answer asynchronously
});

chrome.runtime.onConnect.addListener((port) => {
  // The Port path is for content scripts in tabs (and Veil's own pages).
  if (port.name === veilWire.PORT_NAME && port.sender && senderKind(port.sender) !== 'other') serveCloakPort(port);
});

// The default, said explicitly: the token and tickets there are for Veil's own pages only.
void chrome.storage.session.setAccessLevel?.({ accessLevel: 'TRUSTED_CONTEXTS' }).catch(() => {});

chrome.runtime.onInstalled.addListener(({ reason }) => {
  if (reason === 'install') void chrome.tabs.create({ url: chrome.runtime.getURL('src/pairing/pairing.html') });
});

chrome.tabs.onRemoved.addListener((tabId) => {
  void forgetTab(tabId);
});
