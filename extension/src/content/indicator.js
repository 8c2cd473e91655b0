// The small "protecting your photos" badge shown while cloaking, with
// progress across several files, the companion's percentage for a file that
// takes a while (videos), and a Cancel button that stops the work and gives
// the page nothing. Bottom-right, unobtrusive, no page CSS. The same
// percentage goes on the toolbar button's badge (background/handlers.js).
'use strict';

(() => {
  const CSS = `
    .badge { font: 13px/1.35 system-ui, sans-serif; color: #f4f6fb; background: #243049;
      border-radius: 10px; padding: 10px 12px; min-width: 210px; box-shadow: 0 4px 16px rgba(0,0,0,.25); }
    .title { font-weight: 600; margin-bottom: 6px; }
    .row { display: flex; gap: 8px; align-items: center; }
    .bar { flex: 1; height: 5px; border-radius: 3px; background: rgba(255,255,255,.18); overflow: hidden; }
    .fill { height: 100%; width: 0; background: #7fb2ff; transition: width .2s; }
    button { font: 12px system-ui, sans-serif; color: #f4f6fb; background: transparent; border: 1px solid #7a88a6;
      border-radius: 6px; padding: 2px 8px; cursor: pointer; }
  `;

  /** Tells the background the percentage for the toolbar badge; null clears it. */
  /** @param {number | null} percent */
  function toolbarBadge(percent) {
    try {
      void chrome.runtime.sendMessage({ type: 'progress', payload: { percent } }).catch(() => {});
    } catch {
      // The extension was reloaded under this page: the in-page badge still shows it.
    }
  }

  /**
   * @param {File[]} files  The files being protected.
   * @param {() => void} onCancel  The person's Cancel.
   */
  function show(files, onCancel) {
    const total = files.length;
    const noun = veilContent.fileKinds.noun(files);
    const { host, root } = veilContent.uiHost.createHost('right: 16px !important; bottom: 16px !important', CSS);
    const badge = document.createElement('div');
    badge.className = 'badge';
    badge.setAttribute('role', 'status');
    const title = document.createElement('div');
    title.className = 'title';
    const row = document.createElement('div');
    row.className = 'row';
    const bar = document.createElement('div');
    bar.className = 'bar';
    const fill = document.createElement('div');
    fill.className = 'fill';
    bar.append(fill);
    const cancel = document.createElement('button');
    cancel.type = 'button';
    cancel.textContent = 'Cancel';
    cancel.dataset.veilChoice = 'stop';
    cancel.addEventListener('click', (event) => {
      // Only the person's own clicks count (a page cannot reach in here, but be sure).
      if (!event.isTrusted) return;
      cancel.disabled = true;
      title.textContent = 'Cancelling…';
      onCancel();
    });
    row.append(bar, cancel);
    badge.append(title, row);
    root.append(badge);
    let shownPercent = /** @type {number | null} */ (null);

    /**
     * @param {number} done  Files finished.
     * @param {number} fraction  Progress of the current file, 0..1.
     * @param {number | null} percent  The companion's own percentage for the current file, when it reports one.
     */
    function progress(done, fraction, percent) {
      if (cancel.disabled) return;
      const plural = noun === 'photo' ? 'photos' : `${noun}s`;
      const what = total === 1 ? `your ${noun}` : `${total} ${plural}`;
      const count = total === 1 ? '' : ` ${Math.min(done + 1, total)}/${total}`;
      const share = percent === null ? '' : ` ${percent}%`;
      title.textContent = `Veil is protecting ${what}…${count}${share}`;
      fill.style.width = `${Math.round((100 * (done + Math.min(1, fraction))) / total)}%`;
      if (percent !== shownPercent) {
        shownPercent = percent;
        toolbarBadge(percent);
      }
    }
    progress(0, 0, null);
    return {
      progress,
      close: () => {
        host.remove();
        if (shownPercent !== null) toolbarBadge(null);
      },
    };
  }

  /**
   * A short message in the same place that goes away by itself.
   * @param {string} text
   * @param {number} [ms]
   */
  function notice(text, ms = 6000) {
    const { host, root } = veilContent.uiHost.createHost('right: 16px !important; bottom: 16px !important', CSS);
    const badge = document.createElement('div');
    badge.className = 'badge';
    badge.setAttribute('role', 'status');
    badge.textContent = text;
    root.append(badge);
    setTimeout(() => host.remove(), ms);
  }

  veilContent.indicator = { show, notice };
})();
