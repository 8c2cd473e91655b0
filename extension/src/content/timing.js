// Debug timing marks for profiling the upload path (build/bench/bench_extension.py
// --marks). Off unless chrome.storage.local holds {debug: {timings: true}};
// when on, each stage of a photo's trip becomes a User Timing mark named
// `veil:<stage>` on the page's own performance timeline (page scripts can read
// them, so this stays a developer switch). Marks from the transfer frame come
// back as epoch milliseconds and are placed on the same timeline.
'use strict';

(() => {
  let enabled = false;

  /** @param {unknown} value */
  const apply = (value) => {
    enabled = Boolean(/** @type {{timings?: unknown} | undefined} */ (value)?.timings);
  };
  chrome.storage.local.get('debug').then(
    (stored) => apply(stored.debug),
    () => {},
  );
  chrome.storage.onChanged.addListener((changes, area) => {
    if (area === 'local' && 'debug' in changes) apply(changes.debug.newValue);
  });

  /** @param {string} name */
  function mark(name) {
    if (enabled) performance.mark(`veil:${name}`);
  }

  /**
   * Marks taken elsewhere (the transfer frame), as [name, epoch ms] pairs.
   * @param {unknown} marks
   */
  function markAll(marks) {
    if (!enabled || !Array.isArray(marks)) return;
    for (const [name, epoch] of marks) {
      const startTime = Number(epoch) - performance.timeOrigin;
      if (Number.isFinite(startTime) && startTime >= 0) performance.mark(`veil:${String(name)}`, { startTime });
    }
  }

  veilContent.timing = { mark, markAll, enabled: () => enabled };
})();
