// Where the bearer token lives: never in chrome.storage.local, which content
// scripts can read (and a page that compromised its renderer with them).
// - chrome.storage.session: the working copy. Its default access level,
//   TRUSTED_CONTEXTS, keeps it from content scripts (set again explicitly by
//   the background). Cleared when the browser closes.
// - IndexedDB of the extension's own origin: the persistent copy. Content
//   scripts run in the page's origin and cannot open it.
// The transfer frame in Firefox has neither (no storage.session there, and
// its storage is partitioned under the page): it asks the background, which
// answers only Veil's own extension pages (handlers.js).

const DB_NAME = 'veil-secrets';
const STORE = 'secrets';
const SESSION_KEY = 'token';

/** @returns {Promise<IDBDatabase>} */
function openDatabase() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DB_NAME, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE);
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

/**
 * @param {IDBTransactionMode} mode
 * @param {(store: IDBObjectStore) => IDBRequest} action
 * @returns {Promise<unknown>}
 */
async function withStore(mode, action) {
  const database = await openDatabase();
  try {
    return await new Promise((resolve, reject) => {
      const transaction = database.transaction(STORE, mode);
      const request = action(transaction.objectStore(STORE));
      transaction.oncomplete = () => resolve(request.result);
      transaction.onerror = () => reject(transaction.error);
      transaction.onabort = () => reject(transaction.error);
    });
  } finally {
    database.close();
  }
}

/** Whether this context has the stores itself (background, popup, options, pairing, confirm). */
const trusted = () => Boolean(chrome.storage.session);

/** @returns {Promise<string>} */
export async function loadToken() {
  if (!trusted()) {
    const answer = await chrome.runtime.sendMessage({ type: 'frameToken', payload: {} });
    return typeof answer?.token === 'string' ? answer.token : '';
  }
  const session = (await chrome.storage.session.get(SESSION_KEY))[SESSION_KEY];
  if (typeof session === 'string' && session) return session;
  let token = await withStore('readonly', (store) => store.get(SESSION_KEY));
  if (typeof token !== 'string' || !token) {
    // From before 0.2: the token was in storage.local. Move it out of content scripts' reach.
    const legacy = (await chrome.storage.local.get(SESSION_KEY))[SESSION_KEY];
    if (typeof legacy !== 'string' || !legacy) return '';
    await saveToken(legacy);
    token = legacy;
  }
  await chrome.storage.session.set({ [SESSION_KEY]: token });
  return /** @type {string} */ (token);
}

/**
 * Forgets a token the companion refused, unless the person has paired again
 * since and a newer one replaced it: a request that set out with the old token
 * (a transfer frame in a tab opened before the new pairing, say) must not
 * throw away the new one.
 * @param {string} rejected
 */
export async function forgetRejectedToken(rejected) {
  if (!rejected) return;
  if (!trusted()) {
    await chrome.runtime.sendMessage({ type: 'forgetToken', payload: { token: rejected } });
    return;
  }
  if ((await loadToken()) === rejected) await saveToken('');
}

/** @param {string} token  '' forgets it. Only where the stores are (see trusted()). */
export async function saveToken(token) {
  if (!trusted()) throw new Error('Veil: saveToken outside the background and extension pages');
  if (token) {
    await withStore('readwrite', (store) => store.put(token, SESSION_KEY));
    await chrome.storage.session.set({ [SESSION_KEY]: token });
  } else {
    await withStore('readwrite', (store) => store.delete(SESSION_KEY));
    await chrome.storage.session.remove(SESSION_KEY);
  }
  await chrome.storage.local.remove(SESSION_KEY);
}

/** The storage area and key whose change means the token changed. */
export const TOKEN_CHANGE = Object.freeze({ area: 'session', key: SESSION_KEY });
