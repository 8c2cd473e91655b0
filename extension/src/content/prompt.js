// Asked when a photo could not be cloaked: the page has received nothing, and
// only the person decides whether the original goes out. Escape = cancel.
'use strict';

(() => {
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
  `;

  /**
   * @param {FailureInfo} failure
   * @param {number} fileCount
   * @returns {Promise<PromptChoice>}
   */
  function ask(failure, fileCount) {
    return new Promise((resolve) => {
      const { host, root } = veilContent.uiHost.createHost('inset: 0 !important', CSS);
      const backdrop = document.createElement('div');
      backdrop.className = 'backdrop';
      const dialog = document.createElement('div');
      dialog.className = 'dialog';
      dialog.setAttribute('role', 'alertdialog');
      dialog.setAttribute('aria-modal', 'true');
      const heading = document.createElement('h2');
      const photos = fileCount === 1 ? 'this photo' : `${fileCount} photos`;
      heading.textContent = `Veil could not protect ${photos}`;
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
        ['original', 'Upload original this once', 'risky'],
        ['retry', 'Retry', 'primary'],
      ];
      /** @param {PromptChoice} choice */
      const choose = (choice) => {
        host.remove();
        resolve(choice);
      };
      for (const [choice, label, className] of choices) {
        const button = document.createElement('button');
        button.type = 'button';
        button.textContent = label;
        button.className = className;
        button.dataset.veilChoice = choice;
        button.addEventListener('click', () => choose(choice));
        buttons.append(button);
      }
      dialog.append(buttons);
      dialog.addEventListener('keydown', (event) => {
        if (event.key === 'Escape') choose('cancel');
      });
      backdrop.append(dialog);
      root.append(backdrop);
      /** @type {HTMLButtonElement | null} */ (root.querySelector('button.primary'))?.focus();
    });
  }

  veilContent.prompt = { ask };
})();
