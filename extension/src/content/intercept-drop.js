// Drag and drop onto any element: the trusted drop is cancelled, the photos
// cloaked, and a drop carrying the cloaked files is dispatched at the same
// target with the same coordinates and modifier keys.
'use strict';

(() => {
  const { cloakFiles } = veilContent;

  /** @param {DragEvent} event */
  async function redrop(event) {
    const transfer = /** @type {DataTransfer} */ (event.dataTransfer);
    const files = Array.from(transfer.files);
    // The original DataTransfer is unreadable once this event returns: copy now.
    const strings = transfer.types.filter((type) => type !== 'Files').map((type) => [type, transfer.getData(type)]);
    const target = cloakFiles.targetOf(event) ?? document;
    const init = {
      bubbles: true,
      cancelable: true,
      composed: true,
      clientX: event.clientX,
      clientY: event.clientY,
      screenX: event.screenX,
      screenY: event.screenY,
      ctrlKey: event.ctrlKey,
      shiftKey: event.shiftKey,
      altKey: event.altKey,
      metaKey: event.metaKey,
    };
    const result = await cloakFiles.protect(files);
    if (result === null) return;
    const replacement = cloakFiles.toDataTransfer(result);
    for (const [type, value] of strings) replacement.setData(type, value);
    target.dispatchEvent(new DragEvent('drop', { ...init, dataTransfer: replacement }));
  }

  window.addEventListener(
    'dragenter',
    (event) => {
      const carriesFiles = event.isTrusted && event.dataTransfer?.types.includes('Files');
      if (carriesFiles && veilContent.transport.currentSiteState()?.enabled !== false) veilContent.bridge.warm();
    },
    true,
  );

  window.addEventListener(
    'drop',
    (event) => {
      if (!event.isTrusted || !event.dataTransfer) return;
      if (!cloakFiles.shouldIntercept(event.dataTransfer.files)) return;
      // A drop on a file input fills the input natively (then input/change fire,
      // which intercept-input.js handles); a synthetic drop could not do that.
      const target = /** @type {HTMLInputElement} */ (cloakFiles.targetOf(event));
      if (target && target.localName === 'input' && target.type === 'file') return;
      event.preventDefault(); // the browser must not open the original either
      event.stopImmediatePropagation();
      void redrop(event);
    },
    true,
  );
})();
