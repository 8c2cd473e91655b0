// The one place where an original photo is released: an extension window
// that web pages cannot script, style, cover or click into. Opened by the
// background when the person chose "Upload original…" in the in-page prompt
// (src/content/prompt.js); what it says comes from the background, which
// takes the site from the tab itself, not from the page.

import { ask } from '../shared/messaging.js';

const id = new URLSearchParams(location.search).get('id') ?? '';

/** @param {boolean} confirmed */
async function answer(confirmed) {
  for (const button of document.querySelectorAll('button')) button.disabled = true;
  try {
    await ask('answerOriginal', { id, confirmed });
  } finally {
    window.close();
  }
}

async function main() {
  const request = await ask('originalRequest', { id });
  /** @type {HTMLElement} */ (document.getElementById('names')).textContent = request.names.join(', ') || 'this photo';
  /** @type {HTMLElement} */ (document.getElementById('site')).textContent = request.site;
  /** @type {HTMLElement} */ (document.getElementById('reason')).textContent = request.reason;
  document.getElementById('send')?.addEventListener('click', () => void answer(true));
  document.getElementById('keep')?.addEventListener('click', () => void answer(false));
  document.body.dataset.ready = 'true';
}

void main().catch((error) => {
  document.body.textContent = `Veil: ${String(error?.message ?? error)}`;
});
