// <input type=file>, in the page's own world (see natives.js): every way a
// page can get the files a person picked in a file input.
//
// 1. Inputs in the document: the trusted `input` and `change` are stopped in
//    the capture phase on window (before any page listener), the input is
//    emptied at once, and after cloaking it is refilled with the cloaks and
//    fresh `input`/`change` are dispatched.
// 2. Inputs outside the document (created in script, never inserted) or in
//    shadow roots: events there may never reach window, so click() and
//    showPicker() put the same listeners on the input itself, and
//    attachShadow() on every shadow root, open or closed.
// 3. Whatever still slips past (a page's listener that was on the input
//    before Veil's, a label click inside a closed shadow root, polling): the
//    `files` and `webkitEntries` getters and `new FormData(form)` never give
//    out a picked photo Veil has not handed over; reading one takes it out
//    of the input (fail closed: the page sees an empty input) and hands the
//    cloak over with fresh events once it is ready.
// A later pick in the same input always wins over an earlier one still being cloaked, and
// cancels it: the companion stops working on a file the page will never get.
'use strict';

(() => {
  const page = veilPage;
  const { natives } = page;
  const weakSetDelete = page.uncurry(WeakSet.prototype.delete);
  const formElements = page.getter(HTMLFormElement.prototype, 'elements');
  const collectionLength = page.getter(HTMLCollection.prototype, 'length');
  const collectionItem = page.uncurry(HTMLCollection.prototype.item);

  /** Files Veil handed to the page (or the page set itself): reading them is fine. */
  const handed = new WeakSet();
  /** Per input, its latest pick: an older one still being cloaked is dropped. */
  const generations = new WeakMap();
  /** Per input, how to cancel the pick still being cloaked: a later pick stops its work. */
  const inFlight = new WeakMap();
  /** Inputs whose trusted `change` is still to come and must be swallowed. */
  const awaitingChange = new WeakSet();
  /** Inputs and shadow roots that Veil listens on directly. */
  const watched = new WeakSet();

  /** @param {unknown} node */
  function isFileInput(node) {
    try {
      return natives.localName(node) === 'input' && natives.inputType(node) === 'file';
    } catch {
      return false; // not an element
    }
  }

  /** @param {HTMLInputElement} input */
  function blessCurrent(input) {
    const files = page.filesOf(natives.inputFiles(input));
    for (let index = 0; index < files.length; index += 1) natives.weakSetAdd(handed, files[index]);
  }

  /**
   * The files in the input that Veil has not handed over and must take, or null.
   * @param {HTMLInputElement} input
   * @returns {File[] | null}
   */
  function untaken(input) {
    const files = page.filesOf(natives.inputFiles(input));
    let fresh = false;
    for (let index = 0; index < files.length; index += 1) if (!natives.weakSetHas(handed, files[index])) fresh = true;
    if (!fresh) return null;
    if (!page.anyCloakable(files)) {
      blessCurrent(input); // nothing to cloak (a PDF, say): the page may have it as it is
      return null;
    }
    return files;
  }

  /**
   * Puts files into an input for the page and tells it, as a pick would.
   * @param {HTMLInputElement} input
   * @param {File[]} files
   */
  function deliver(input, files) {
    supersede(input);
    natives.weakMapSet(generations, input, (natives.weakMapGet(generations, input) ?? 0) + 1);
    natives.setInputFiles(input, natives.dataTransferFiles(page.toDataTransfer(files)));
    blessCurrent(input);
    natives.dispatchEvent(input, new natives.Event('input', { bubbles: true, composed: true }));
    natives.dispatchEvent(input, new natives.Event('change', { bubbles: true }));
  }

  /**
   * Empties the input now and hands the page the cloaks later.
   * @param {HTMLInputElement} input
   * @param {File[]} files
   */
  function take(input, files) {
    supersede(input);
    const generation = (natives.weakMapGet(generations, input) ?? 0) + 1;
    natives.weakMapSet(generations, input, generation);
    natives.setInputFiles(input, natives.dataTransferFiles(new natives.DataTransfer()));
    const pick = page.request(files, 'input');
    natives.weakMapSet(inFlight, input, pick.cancel);
    natives.promiseThen(pick.done, (/** @type {File[] | null} */ result) => {
      if (natives.weakMapGet(inFlight, input) === pick.cancel) natives.weakMapDelete(inFlight, input);
      // A later pick won, or the person cancelled: the page gets nothing from this one.
      if (natives.weakMapGet(generations, input) !== generation || result === null) return;
      deliver(input, result);
    });
  }

  /**
   * A new pick (or drop) in this input: the one still being cloaked will never reach the
   * page, so its work on the companion stops now instead of delaying the new one.
   * @param {HTMLInputElement} input
   */
  function supersede(input) {
    const cancel = natives.weakMapGet(inFlight, input);
    if (!cancel) return;
    natives.weakMapDelete(inFlight, input);
    cancel();
  }

  /** @param {Event} event */
  function onEvent(event) {
    if (!natives.eventIsTrusted(event)) return;
    const input = natives.composedPath(event)[0];
    if (!isFileInput(input)) return;
    const type = natives.eventType(event);
    if (type === 'change' && natives.weakSetHas(awaitingChange, input)) {
      weakSetDelete(awaitingChange, input);
      natives.stopImmediatePropagation(event);
      return;
    }
    const files = untaken(input);
    if (!files) return;
    natives.stopImmediatePropagation(event);
    if (type === 'input') {
      natives.weakSetAdd(awaitingChange, input);
      // `change` is not composed: inside a shadow root it never reaches window.
      const root = natives.getRootNode(input);
      if (root instanceof natives.ShadowRoot && !natives.weakSetHas(watched, root)) {
        natives.weakSetAdd(watched, root);
        natives.addEventListener(root, 'change', onEvent, true);
      }
    }
    take(input, files);
  }

  /**
   * A file input about to open its picker: listen on it directly when its
   * events may not reach window, and get the transfer ready meanwhile.
   * @param {unknown} input
   */
  function watch(input) {
    if (!isFileInput(input)) return;
    page.tell({ kind: 'warm' });
    if (natives.weakSetHas(watched, input)) return;
    natives.weakSetAdd(watched, input);
    natives.addEventListener(input, 'input', onEvent, true);
    natives.addEventListener(input, 'change', onEvent, true);
  }

  natives.addEventListener(window, 'input', onEvent, true);
  natives.addEventListener(window, 'change', onEvent, true);
  natives.addEventListener(
    window,
    'click',
    (/** @type {Event} */ event) => {
      if (natives.eventIsTrusted(event)) watch(natives.composedPath(event)[0]);
    },
    true,
  );

  const filesDescriptor = natives.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'files');
  const entriesGetter = natives.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'webkitEntries')?.get;
  const attachShadow = Element.prototype.attachShadow;
  const click = HTMLElement.prototype.click;
  const showPicker = HTMLInputElement.prototype.showPicker;
  const NativeFormData = window.FormData; // window.: the FormData below is the wrapper (hoisted)

  // Method shorthand: same names and lengths as the browser's own, no prototype.
  const wrappers = {
    /** @param {unknown[]} args */
    click(...args) {
      watch(this);
      return natives.apply(click, this, args);
    },
    /** @param {unknown[]} args */
    showPicker(...args) {
      watch(this);
      return natives.apply(showPicker, this, args);
    },
    /** @param {unknown[]} args */
    attachShadow(...args) {
      const root = natives.apply(attachShadow, this, args);
      // Every shadow root the page makes, open or closed: events inside may never reach window
      // (Firefox does not compose a file input's `input` event; `change` is never composed).
      natives.weakSetAdd(watched, root);
      natives.addEventListener(root, 'input', onEvent, true);
      natives.addEventListener(root, 'change', onEvent, true);
      return root;
    },
    /** @this {HTMLInputElement} */
    get files() {
      const list = natives.inputFiles(this);
      if (!isFileInput(this)) return list;
      const files = untaken(this);
      if (!files) return list;
      take(this, files);
      return natives.inputFiles(this);
    },
    /**
     * @this {HTMLInputElement}
     * @param {FileList} value
     */
    set files(value) {
      natives.setInputFiles(this, value);
      if (isFileInput(this)) blessCurrent(this); // the page's own files
    },
    /** @this {HTMLInputElement} */
    get webkitEntries() {
      if (isFileInput(this)) {
        const files = untaken(this);
        if (files) take(this, files);
      }
      return natives.apply(/** @type {Function} */ (entriesGetter), this, []);
    },
  };

  /**
   * `new FormData(form)` reads the form's file inputs without their getter.
   * @param {unknown[]} args
   */
  function FormData(...args) {
    if (!new.target) throw new TypeError("Failed to construct 'FormData': Please use the 'new' operator.");
    const form = args[0];
    if (form) {
      try {
        const elements = formElements(form);
        const count = collectionLength(elements);
        for (let index = 0; index < count; index += 1) {
          const element = collectionItem(elements, index);
          if (isFileInput(element)) {
            const files = untaken(element);
            if (files) take(element, files);
          }
        }
      } catch {
        // Not a form: the browser's own constructor throws the right error below.
      }
    }
    return natives.construct(NativeFormData, args, new.target);
  }
  natives.defineProperty(FormData, 'prototype', { value: NativeFormData.prototype, writable: false });
  Object.setPrototypeOf(FormData, natives.getPrototypeOf(NativeFormData));

  const wrapperDescriptors = /** @type {Record<string, PropertyDescriptor>} */ (Object.getOwnPropertyDescriptors(wrappers));
  page.replace(HTMLElement.prototype, 'click', { value: wrappers.click });
  page.replace(Element.prototype, 'attachShadow', { value: wrappers.attachShadow });
  if (typeof showPicker === 'function') page.replace(HTMLInputElement.prototype, 'showPicker', { value: wrappers.showPicker });
  if (filesDescriptor?.get && filesDescriptor.set) {
    page.replace(HTMLInputElement.prototype, 'files', { get: wrapperDescriptors.files.get, set: wrapperDescriptors.files.set });
  }
  if (entriesGetter) page.replace(HTMLInputElement.prototype, 'webkitEntries', { get: wrapperDescriptors.webkitEntries.get });
  page.replace(window, 'FormData', { value: FormData });
  page.replace(NativeFormData.prototype, 'constructor', { value: FormData });

  page.fileInput = { deliver, isFileInput };
})();
