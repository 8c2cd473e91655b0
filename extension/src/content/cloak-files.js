// The policy shared by every interception path: cloak each photo, keep the
// order and the non-photos, and on any failure give the page nothing until
// the person answers the prompt. Never hands over an original on its own.
'use strict';

(() => {
  const { fileKinds, transport } = veilContent;

  /**
   * @param {File[]} files
   * @param {string} [path]  Which interception path asks (see prompt.js).
   * @returns {Promise<File[] | null>}  The files for the page, or null: give it nothing.
   */
  async function protect(files, path = '') {
    const site = await transport.siteState();
    if (!site.enabled) return files;
    const output = [...files];
    /** @type {string[]} */
    const withoutFaces = [];
    let pending = files.map((file, index) => index).filter((index) => fileKinds.isCloakable(files[index]));
    for (;;) {
      /** @type {Array<{index: number, failure: FailureInfo}>} */
      const failed = [];
      veilContent.timing.mark('site-known');
      const indicator = veilContent.indicator.show(pending.length);
      veilContent.timing.mark('indicator-shown');
      try {
        // One at a time: the companion cloaks one photo at a time anyway, and
        // progress reads naturally.
        for (const [position, index] of pending.entries()) {
          try {
            const cloaked = await transport.cloakFile(files[index], (fraction) => indicator.progress(position, fraction));
            output[index] = cloaked.file;
            if (cloaked.faces === 0) withoutFaces.push(files[index].name);
          } catch (error) {
            const info = /** @type {Partial<FailureInfo>} */ (error ?? {});
            failed.push({
              index,
              failure: { code: String(info.code ?? 'transfer_failed'), message: String(info.message ?? error), fix: String(info.fix ?? '') },
            });
          }
          indicator.progress(position + 1, 0);
        }
      } finally {
        indicator.close();
        veilContent.timing.mark('indicator-closed');
      }
      if (failed.length === 0) {
        // Say so rather than claim protection: such photos only had their metadata removed.
        if (withoutFaces.length > 0) {
          veilContent.indicator.notice(`Veil found no face in ${withoutFaces.join(', ')}: sent with location and camera data removed, nothing to cloak.`);
        }
        return output;
      }
      const names = failed.map((item) => files[item.index].name);
      const choice = await veilContent.prompt.ask(failed[0].failure, names, path);
      if (choice === 'cancel') return null;
      // 'original': the failed photos go out unprotected, by the person's explicit choice.
      if (choice === 'original') return output;
      pending = failed.map((item) => item.index);
    }
  }

  veilContent.cloakFiles = { protect };
})();
