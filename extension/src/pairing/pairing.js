// First-run page: explains Veil, checks the companion answers, and exchanges
// the 6-digit code from `veil pair` for a token.

import { ask } from '../shared/messaging.js';
import { renderStatus } from '../shared/status-view.js';

/** @param {string} id */
const byId = (id) => /** @type {HTMLElement} */ (document.getElementById(id));

async function check() {
  const status = await ask('status', {});
  renderStatus(byId('status'), status);
  return status;
}

async function main() {
  byId('check').addEventListener('click', () => void check());
  byId('pair-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const result = byId('pair-result');
    result.className = '';
    result.textContent = 'Pairing…';
    try {
      const status = await ask('pair', { code: /** @type {HTMLInputElement} */ (byId('code')).value });
      renderStatus(byId('status'), status);
      result.className = 'ok';
      result.textContent =
        'Paired. Veil now cloaks the faces in the photos you upload with the default cloak, which protects little. ' +
        'To protect your own face, open Protect my face in Veil\u2019s settings (link below).';
    } catch (error) {
      const failure = /** @type {Error & {fix?: string}} */ (error);
      result.className = 'bad';
      result.textContent = `${failure.message}${failure.fix ? ` ${failure.fix}` : ''}`;
    }
  });
  await check();
  document.body.dataset.ready = 'true';
}

void main();
