// The policy shared by every interception path: cloak each photo and video,
// keep the order and the other files, and on any failure give the page
// nothing until the person answers the prompt. Never hands over an original
// on its own. Cancel (the indicator's button, or the page-world side when a
// later pick in the same input supersedes this one) stops the work on the
// companion and gives the page nothing.
'use strict';

(() => {
  const { fileKinds, transport } = veilContent;

  /**
   * @param {File[]} files
   * @param {string} [path]  Which interception path asks (see prompt.js).
   * @param {AbortSignal} [superseded]  Aborted when the page will not take the answer.
   * @returns {Promise<File[] | null>}  The files for the page, or null: give it nothing.
   */
  async function protect(files, path = '', superseded = undefined) {
    const site = await transport.siteState();
    if (!site.enabled) return files;
    const output = [...files];
    /** @type {string[]} */
    const withoutFaces = [];
    // The person's Cancel on the indicator, or the page-world side's.
    const cancelled = new AbortController();
    const stop = () => cancelled.abort();
    if (superseded?.aborted) return null;
    superseded?.addEventListener('abort', stop, { once: true });
    let pending = files.map((file, index) => index).filter((index) => fileKinds.isCloakable(files[index]));
    try {
      for (;;) {
        /** @type {Array<{index: number, failure: FailureInfo}>} */
        const failed = [];
        veilContent.timing.mark('site-known');
        const indicator = veilContent.indicator.show(
          pending.map((index) => files[index]),
          stop,
        );
        veilContent.timing.mark('indicator-shown');
        try {
          // One at a time: the companion cloaks one file at a time anyway, and
          // progress reads naturally.
          for (const [position, index] of pending.entries()) {
            if (cancelled.signal.aborted) return null;
            try {
              const cloaked = await transport.cloakFile(files[index], {
                onProgress: (fraction, percent) => indicator.progress(position, fraction, percent),
                signal: cancelled.signal,
              });
              output[index] = cloaked.file;
              if (cloaked.faces === 0) withoutFaces.push(files[index].name);
            } catch (error) {
              // Cancelled: the page gets nothing, and nobody is asked anything.
              if (cancelled.signal.aborted) return null;
              const info = /** @type {Partial<FailureInfo>} */ (error ?? {});
              failed.push({
                index,
                failure: { code: String(info.code ?? 'transfer_failed'), message: String(info.message ?? error), fix: String(info.fix ?? '') },
              });
            }
            indicator.progress(position + 1, 0, null);
          }
        } finally {
          indicator.close();
          veilContent.timing.mark('indicator-closed');
        }
        if (failed.length === 0) {
          // Say so rather than claim protection: such files only had their metadata removed.
          if (withoutFaces.length > 0) {
            veilContent.indicator.notice(`Veil found no face in ${withoutFaces.join(', ')}: sent with location and camera data removed, nothing to cloak.`);
          }
          return output;
        }
        const names = failed.map((item) => files[item.index].name);
        const kind = fileKinds.noun(failed.map((item) => files[item.index]));
        const choice = await veilContent.prompt.ask(failed[0].failure, names, path, kind);
        if (choice === 'cancel' || cancelled.signal.aborted) return null;
        // 'original': the failed files go out unprotected, by the person's explicit choice.
        if (choice === 'original') return output;
        pending = failed.map((item) => item.index);
      }
    } finally {
      superseded?.removeEventListener('abort', stop);
    }
  }

  veilContent.cloakFiles = { protect };
})();
