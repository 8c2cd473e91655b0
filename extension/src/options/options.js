// The options page: companion port and pairing, mode, default policy, the
// list of sites with their own setting (the same storage the popup uses), and
// "Protect my face" (protect.js: the only page the background answers about
// enrolled people and enrolment).

import { ask } from '../shared/messaging.js';
import { renderStatus } from '../shared/status-view.js';
import { SETTINGS_KEY, loadSettings } from '../shared/settings.js';
import { setUpProtect } from './protect.js';

/** @param {string} id */
const byId = (id) => /** @type {HTMLElement} */ (document.getElementById(id));

/** @param {import('../shared/settings.js').Settings} settings */
function renderSites(settings) {
  const rows = Object.entries(settings.sites)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([host, enabled]) => {
      const row = document.createElement('tr');
      const name = document.createElement('td');
      name.textContent = host;
      const state = document.createElement('td');
      state.className = enabled ? 'on' : 'off';
      state.textContent = enabled ? 'protects uploads' : 'off';
      const actions = document.createElement('td');
      const toggle = document.createElement('button');
      toggle.textContent = enabled ? 'Switch off' : 'Switch on';
      toggle.addEventListener('click', () => void ask('setSite', { host, enabled: !enabled }));
      const forget = document.createElement('button');
      forget.textContent = 'Use default';
      forget.addEventListener('click', () => void ask('forgetSite', { host }));
      actions.append(toggle, ' ', forget);
      row.append(name, state, actions);
      return row;
    });
  /** @type {HTMLElement} */ (byId('sites').querySelector('tbody')).replaceChildren(...rows);
  byId('no-sites').hidden = rows.length > 0;
  byId('sites').hidden = rows.length === 0;
}

/** @param {import('../shared/settings.js').Settings} settings */
function renderSettings(settings) {
  /** @type {HTMLInputElement} */ (byId('port')).value = String(settings.port);
  /** @type {HTMLSelectElement} */ (byId('mode')).value = settings.mode;
  /** @type {HTMLSelectElement} */ (byId('policy')).value = settings.policy;
  renderSites(settings);
}

/** @type {() => Promise<void>} */
let refreshProfiles = async () => {};

async function refreshStatus() {
  renderStatus(byId('status'), await ask('status', {}));
}

async function main() {
  renderSettings(await loadSettings());
  await refreshStatus();
  refreshProfiles = setUpProtect();

  byId('port-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    await ask('setSettings', { patch: { port: Number(/** @type {HTMLInputElement} */ (byId('port')).value) } });
    byId('port-saved').hidden = false;
    await refreshStatus();
    await refreshProfiles();
  });
  byId('unpair').addEventListener('click', async () => {
    renderStatus(byId('status'), await ask('unpair', {}));
  });
  const mode = /** @type {HTMLSelectElement} */ (byId('mode'));
  mode.addEventListener('change', () => {
    void ask('setSettings', { patch: { mode: /** @type {import('../shared/settings.js').Mode} */ (mode.value) } });
  });
  const policy = /** @type {HTMLSelectElement} */ (byId('policy'));
  policy.addEventListener('change', () => {
    void ask('setSettings', { patch: { policy: /** @type {'all' | 'listed'} */ (policy.value) } });
  });
  byId('site-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const submitter = /** @type {HTMLButtonElement | null} */ (/** @type {SubmitEvent} */ (event).submitter);
    const raw = /** @type {HTMLInputElement} */ (byId('site-host')).value.trim();
    // Accept a pasted URL as well as a bare host name.
    const host = raw.includes('://') ? new URL(raw).hostname : raw.toLowerCase();
    if (host) void ask('setSite', { host, enabled: submitter?.dataset.enabled !== 'false' });
  });

  // The popup changes the same settings: keep this page in step.
  chrome.storage.onChanged.addListener((changes, area) => {
    if (area === 'local' && SETTINGS_KEY in changes) void loadSettings().then(renderSettings);
    if (area === 'local' && 'token' in changes) void refreshStatus();
    if (area === 'session' && 'token' in changes) void refreshStatus().then(refreshProfiles);
  });
  document.body.dataset.ready = 'true';
}

void main();
