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
  | { kind: 'begin'; name: string; type: string; size: number; binary?: boolean; job?: string; video?: boolean }
  | { kind: 'chunk'; data?: string; bytes?: Uint8Array }
  | { kind: 'end' }
  | { kind: 'ping' }
  | { kind: 'cancel' };

/** Messages on the cloak port, background -> content script. */
type ToContent =
  | { kind: 'result'; type: string; size: number; faces: number; seconds: number | null; ssim: number | null }
  | { kind: 'chunk'; data?: string; bytes?: Uint8Array }
  | { kind: 'end' }
  | { kind: 'progress'; progress: number | null; stage: string | null }
  | { kind: 'error'; code: string; message: string; fix: string };

/** The companion's progress of one upload (GET /v1/jobs/{id}), null where it gave none. */
interface JobProgress {
  progress: number | null;
  stage: string | null;
}

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
    cloakBlob(
      file: File,
      options: { job: string; video: boolean; signal: AbortSignal; onProgress: (status: JobProgress) => void },
    ): Promise<{ blob: Blob; type: string; faces: number; seconds: number | null; ssim: number | null }>;
    warm(): void;
  };
  uiHost: {
    createHost(placement: string, css: string): { host: HTMLElement; root: ShadowRoot };
  };
  fileKinds: {
    isCloakable(file: File): boolean;
    hasCloakable(files: ArrayLike<File> | null | undefined): boolean;
    isVideo(file: File): boolean;
    noun(files: File[]): string;
  };
  transport: {
    cloakFile(
      file: File,
      options: { onProgress: (fraction: number, percent: number | null) => void; signal: AbortSignal },
    ): Promise<CloakedFile>;
    siteState(): Promise<SiteState>;
    currentSiteState(): SiteState | null;
  };
  indicator: {
    show(files: File[], onCancel: () => void): { progress(done: number, fraction: number, percent: number | null): void; close(): void };
    notice(text: string, ms?: number): void;
  };
  prompt: {
    ask(failure: FailureInfo, names: string[], path?: string, kind?: string): Promise<PromptChoice>;
  };
  cloakFiles: {
    /** Resolves to the files to hand the page, or null when the page must get nothing. */
    protect(files: File[], path?: string, superseded?: AbortSignal): Promise<File[] | null>;
  };
}

/** What Veil's page-world scripts (src/page/) share; src/page/seal.js deletes it. */
interface VeilPage {
  natives: Record<string, any>;
  uncurry<F extends Function>(fn: F): (self: any, ...args: any[]) => any;
  getter(owner: object, name: string): (self: any) => any;
  replace(owner: object, name: string, replacement: { value?: Function; get?: Function; set?: Function }): void;
  protect(files: File[], path: string): Promise<File[] | null>;
  /** The same, cancellable: cancel() stops the work and resolves `done` to null. */
  request(files: File[], path: string): { done: Promise<File[] | null>; cancel: () => void };
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
