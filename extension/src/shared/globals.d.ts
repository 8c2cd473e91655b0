// Types of the globals that classic scripts (shared/wire.js and the content
// scripts under src/content/) attach, for `tsc --checkJs`.

interface VeilWire {
  readonly CHUNK_BYTES: number;
  readonly PORT_NAME: string;
  encode(bytes: Uint8Array): string;
  decode(text: string): Uint8Array;
  readonly BINARY_MESSAGES: boolean;
  sendChunks(port: chrome.runtime.Port, blob: Blob, binary: boolean): Promise<void>;
  chunkBytes(message: { data?: string; bytes?: Uint8Array }): Uint8Array;
}

/** Messages on the cloak port, content script -> background. */
type ToWorker =
  | { kind: 'begin'; name: string; type: string; size: number; binary?: boolean }
  | { kind: 'chunk'; data?: string; bytes?: Uint8Array }
  | { kind: 'end' }
  | { kind: 'ping' };

/** Messages on the cloak port, background -> content script. */
type ToContent =
  | { kind: 'result'; type: string; size: number; faces: number; seconds: number | null; ssim: number | null }
  | { kind: 'chunk'; data?: string; bytes?: Uint8Array }
  | { kind: 'end' }
  | { kind: 'error'; code: string; message: string; fix: string };

interface CloakedFile {
  file: File;
  faces: number;
  seconds: number | null;
  ssim: number | null;
}

interface SiteState {
  host: string;
  enabled: boolean;
}

interface FailureInfo {
  code: string;
  message: string;
  fix: string;
}

/** What the person chose in the in-page prompt after a failure. */
type PromptChoice = 'retry' | 'original' | 'cancel';

interface VeilContent {
  timing: {
    mark(name: string): void;
    markAll(marks: unknown): void;
    enabled(): boolean;
  };
  bridge: {
    cloakBlob(file: File): Promise<{ blob: Blob; type: string; faces: number; seconds: number | null; ssim: number | null }>;
    warm(): void;
  };
  uiHost: {
    createHost(placement: string, css: string): { host: HTMLElement; root: ShadowRoot };
  };
  fileKinds: {
    isCloakable(file: File): boolean;
    hasCloakable(files: ArrayLike<File> | null | undefined): boolean;
  };
  transport: {
    cloakFile(file: File, onProgress: (fraction: number) => void): Promise<CloakedFile>;
    siteState(): Promise<SiteState>;
    currentSiteState(): SiteState | null;
  };
  indicator: {
    show(total: number): { progress(done: number, fraction: number): void; close(): void };
    notice(text: string, ms?: number): void;
  };
  prompt: {
    ask(failure: FailureInfo, names: string[], path?: string): Promise<PromptChoice>;
  };
  cloakFiles: {
    /** Resolves to the files to hand the page, or null when the page must get nothing. */
    protect(files: File[], path?: string): Promise<File[] | null>;
  };
}

/** What Veil's page-world scripts (src/page/) share; src/page/seal.js deletes it. */
interface VeilPage {
  natives: Record<string, any>;
  uncurry<F extends Function>(fn: F): (self: any, ...args: any[]) => any;
  getter(owner: object, name: string): (self: any) => any;
  replace(owner: object, name: string, replacement: { value?: Function; get?: Function; set?: Function }): void;
  protect(files: File[], path: string): Promise<File[] | null>;
  tell(message: { kind: string; code?: string }): void;
  isCloakable(file: File): boolean;
  anyCloakable(files: File[]): boolean;
  filesOf(list: FileList | null): File[];
  toDataTransfer(files: File[]): DataTransfer;
  fileInput?: {
    deliver(input: HTMLInputElement, files: File[]): void;
    isFileInput(node: unknown): boolean;
  };
}

declare var veilWire: VeilWire;
declare var veilPage: VeilPage;
declare var veilContent: VeilContent;
