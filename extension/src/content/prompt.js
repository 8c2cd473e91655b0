// Asked when a photo or video could not be cloaked: the page has received nothing, and
// only the person decides whether the original goes out. Escape = cancel.
//
// The prompt lives in a closed shadow root, but a page can still hide it or
// lay it under its own buttons and have the person click it unawares. So the
// one choice that releases an original is never taken here: "Upload
// original…" opens a Veil window (an extension page the page cannot reach,
// see src/confirm/), and only "Send the original" there releases it. A click
// the page synthesises is not trusted and does nothing.
//
// One prompt at a time per document: a request that comes while one is open
// is answered "cancel" at once, and so is a showOpenFilePicker() read (which
// a page can repeat without the person doing anything) soon after the person
// said Cancel; both with a short notice instead of another prompt.
'use strict';

(() => {
  const QUIET_AFTER_CANCEL_MS = 15_000;
  let open = false;
  let cancelledAt = -Infinity;
  const CSS = `
    .backdrop { position: fixed; inset: 0; background: rgba(10,14,25,.45); display: flex;
      align-items: center; justify-content: center; }
    .dialog { font: 14px/1.45 system-ui, sans-serif; color: #1d2330; background: #fff; border-radius: 12px;
      padding: 18px 20px; width: min(440px, calc(100vw - 40px)); box-shadow: 0 10px 40px rgba(0,0,0,.35); }
    h2 { font-size: 16px; margin: 0 0 8px; }
    p { margin: 0 0 8px; }
    code { display: block; font: 12px/1.4 ui-monospace, monospace; background: #eef1f7; padding: 6px 8px;
      border-radius: 6px; word-break: break-all; }
    .buttons { display: flex; gap: 8px; justify-content: flex-end; margin-top: 14px; flex-wrap: wrap; }
    button { font: inherit; border-radius: 8px; padding: 6px 12px; border: 1px solid #b9c2d4;
      background: #f6f8fc; color: #1d2330; cursor: pointer; }
    button.primary { background: #2f5fd0; border-color: #2f5fd0; color: #fff; }
    button.risky { color: #9b2c1c; }
    .waiting { color: #5b6477; font-size: 13px; margin-top: 8px; }
  `;

  /**
   * Asks the background to open Veil's confirmation window; true when the
   * person chose to send the original there.
   * @param {string[]} names
   * @param {FailureInfo} failure
   * @returns {Promise<boolean>}
   */
  async function confirmOriginal(names, failure) {
    try {
      const answer = await chrome.runtime.sendMessage({ type: 'confirmOriginal', payload: { names, reason: failure.message } });
      return answer?.confirmed === true;
    } catch {
      return false; // the background went away: nothing is released
    }
  }

  /**
   * @param {FailureInfo} failure
   * @param {string[]} names  The files that could not be protected.
   * @param {string} [path]  Which interception path asks (picker and clipboard reads may repeat on their own).
   * @param {string} [kind]  What the files are: 'photo', 'video', 'animated image' or 'file'.
   * @returns {Promise<PromptChoice>}
   */
  function ask(failure, names, path = '', kind = 'photo') {
    const fileCount = names.length;
    const recentlyCancelled = performance.now() - cancelledAt < QUIET_AFTER_CANCEL_MS;
    if (open || ((path === 'picker' || path === 'clipboard') && recentlyCancelled)) {
      veilContent.indicator.notice(`Veil could not protect the ${kind} the page asked for again; nothing was given to the page.`);
      return Promise.resolve(/** @type {PromptChoice} */ ('cancel'));
    }
    open = true;
    return new Promise((resolve) => {
      const { host, root } = veilContent.uiHost.createHost('inset: 0 !important', CSS);
      const backdrop = document.createElement('div');
      backdrop.className = 'backdrop';
      const dialog = document.createElement('div');
      dialog.className = 'dialog';
      dialog.setAttribute('role', 'alertdialog');
      dialog.setAttribute('aria-modal', 'true');
      const heading = document.createElement('h2');
      const what = fileCount === 1 ? `this ${kind}` : `${fileCount} ${kind === 'photo' ? 'photos' : `${kind}s`}`;
      heading.textContent = `Veil could not protect ${what}`;
      const reason = document.createElement('p');
      reason.textContent = `${failure.message} Nothing has been given to the page yet.`;
      dialog.append(heading, reason);
      if (failure.fix) {
        const fix = document.createElement('code');
        fix.textContent = failure.fix;
        dialog.append(fix);
      }
      const buttons = document.createElement('div');
      buttons.className = 'buttons';
      /** @type {Array<[PromptChoice, string, string]>} */
      const choices = [
        ['cancel', 'Cancel', ''],
        ['original', 'Upload original\u2026', 'risky'],
        ['retry', 'Retry', 'primary'],
      ];
      const waiting = document.createElement('p');
      waiting.className = 'waiting';
      waiting.hidden = true;
      waiting.textContent = `Confirm in the Veil window that opened, or close it to keep the ${kind} back.`;
      let confirming = false;
      /** @param {PromptChoice} choice */
      const choose = (choice) => {
        host.remove();
        open = false;
        if (choice === 'cancel') cancelledAt = performance.now();
        resolve(choice);
      };
      /** @param {PromptChoice} choice */
      const onChoice = async (choice) => {
        if (confirming) return;
        if (choice !== 'original') return choose(choice);
        confirming = true;
        waiting.hidden = false;
        const confirmed = await confirmOriginal(names, failure);
        confirming = false;
        waiting.hidden = true;
        if (confirmed) choose('original');
      };
      for (const [choice, label, className] of choices) {
        const button = document.createElement('button');
        button.type = 'button';
        button.textContent = label;
        button.className = className;
        button.dataset.veilChoice = choice;
        button.addEventListener('click', (event) => {
          // Only the person's own clicks count (a page cannot reach in here, but be sure).
          if (event.isTrusted) void onChoice(choice);
        });
        buttons.append(button);
      }
      dialog.append(buttons, waiting);
      dialog.addEventListener('keydown', (event) => {
        if (event.key === 'Escape' && event.isTrusted && !confirming) choose('cancel');
      });
      backdrop.append(dialog);
      root.append(backdrop);
      /** @type {HTMLButtonElement | null} */ (root.querySelector('button.primary'))?.focus();
    });
  }

  veilContent.prompt = { ask };
})();
