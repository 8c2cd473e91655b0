// Settings shared by the background worker, the popup and the options page.
// They live in chrome.storage.local (never only in worker memory: the worker
// can be killed at any moment), under one key so a change is atomic.

/** @typedef {'low' | 'mid' | 'high'} Mode */
/** @typedef {'all' | 'listed'} SitePolicy */

/**
 * @typedef {object} Settings
 * @property {number} port  Companion port on 127.0.0.1.
 * @property {Mode} mode  Cloak strength sent to the companion.
 * @property {SitePolicy} policy  'all': every site unless switched off; 'listed': only sites switched on.
 * @property {Record<string, boolean>} sites  Per-site choice, keyed by hostname.
 */

export const SETTINGS_KEY = 'settings';
export const DEFAULT_PORT = 8345;
/** @type {readonly Mode[]} */
export const MODES = ['low', 'mid', 'high'];

/** @type {Readonly<Settings>} */
export const DEFAULT_SETTINGS = Object.freeze({
  port: DEFAULT_PORT,
  mode: /** @type {Mode} */ ('mid'),
  policy: /** @type {SitePolicy} */ ('all'),
  sites: {},
});

/**
 * Fills in defaults and drops anything malformed, so a bad stored value never breaks cloaking.
 * @param {unknown} raw
 * @returns {Settings}
 */
export function normaliseSettings(raw) {
  const value = /** @type {Partial<Settings>} */ (raw && typeof raw === 'object' ? raw : {});
  const port = Number(value.port);
  return {
    port: Number.isInteger(port) && port > 0 && port < 65536 ? port : DEFAULT_PORT,
    mode: MODES.includes(/** @type {Mode} */ (value.mode)) ? /** @type {Mode} */ (value.mode) : 'mid',
    policy: value.policy === 'listed' ? 'listed' : 'all',
    sites: value.sites && typeof value.sites === 'object' ? { ...value.sites } : {},
  };
}

/** @returns {Promise<Settings>} */
export async function loadSettings() {
  const stored = await chrome.storage.local.get(SETTINGS_KEY);
  return normaliseSettings(stored[SETTINGS_KEY]);
}

/**
 * @param {(current: Settings) => Settings} change
 * @returns {Promise<Settings>}
 */
export async function updateSettings(change) {
  const next = normaliseSettings(change(await loadSettings()));
  await chrome.storage.local.set({ [SETTINGS_KEY]: next });
  return next;
}

/**
 * Whether Veil cloaks uploads on a site.
 * @param {Settings} settings
 * @param {string} host
 * @returns {boolean}
 */
export function isSiteEnabled(settings, host) {
  const choice = settings.sites[host];
  if (typeof choice === 'boolean') return choice;
  return settings.policy === 'all';
}

/**
 * The site key for a tab URL: its hostname, or '' for pages Veil never runs on.
 * @param {string | undefined} url
 * @returns {string}
 */
export function siteOf(url) {
  if (!url) return '';
  try {
    const parsed = new URL(url);
    return parsed.protocol === 'http:' || parsed.protocol === 'https:' ? parsed.hostname : '';
  } catch {
    return '';
  }
}

// The token is kept apart from settings, out of content scripts' reach: see secret-store.js.
export { forgetRejectedToken, loadToken, saveToken } from './secret-store.js';
