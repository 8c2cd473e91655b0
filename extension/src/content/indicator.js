// The small "protecting your photos" badge shown while cloaking, with
// progress across several files. Bottom-right, unobtrusive, no page CSS.
'use strict';

(() => {
  const CSS = `
    .badge { font: 13px/1.35 system-ui, sans-serif; color: #f4f6fb; background: #243049;
      border-radius: 10px; padding: 10px 12px; min-width: 210px; box-shadow: 0 4px 16px rgba(0,0,0,.25); }
    .title { font-weight: 600; margin-bottom: 6px; }
    .bar { height: 5px; border-radius: 3px; background: rgba(255,255,255,.18); overflow: hidden; }
    .fill { height: 100%; width: 0; background: #7fb2ff; transition: width .2s; }
  `;

  /** @param {number} total */
  function show(total) {
    const { host, root } = veilContent.uiHost.createHost('right: 16px !important; bottom: 16px !important', CSS);
    const badge = document.createElement('div');
    badge.className = 'badge';
    badge.setAttribute('role', 'status');
    const title = document.createElement('div');
    title.className = 'title';
    const bar = document.createElement('div');
    bar.className = 'bar';
    const fill = document.createElement('div');
    fill.className = 'fill';
    bar.append(fill);
    badge.append(title, bar);
    root.append(badge);

    /**
     * @param {number} done  Files finished.
     * @param {number} fraction  Progress of the current file, 0..1.
     */
    function progress(done, fraction) {
      const photos = total === 1 ? 'photo' : 'photos';
      title.textContent = `Veil is protecting ${total === 1 ? 'your' : total} ${photos}… ${Math.min(done + 1, total)}/${total}`;
      fill.style.width = `${Math.round((100 * (done + Math.min(1, fraction))) / total)}%`;
    }
    progress(0, 0);
    return { progress, close: () => host.remove() };
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
