export const LOCK_NAME: ".node-sender.lock";
export class SenderLock {
    /**
     * @param {string} folder
     * @param {{ heartbeatSeconds: number, staleLockSeconds: number }} timings
     */
    constructor(folder: string, { heartbeatSeconds, staleLockSeconds }: {
        heartbeatSeconds: number;
        staleLockSeconds: number;
    });
    path: string;
    folder: string;
    heartbeatMs: number;
    staleMs: number;
    /** @type {Holder} */
    me: Holder;
    text: string;
    held: boolean;
    /** @type {NodeJS.Timeout | undefined} */
    timer: NodeJS.Timeout | undefined;
    /** @type {Promise<void> | undefined} */
    beating: Promise<void> | undefined;
    /** @type {string | null} */
    temp: string | null;
    /** Become (or stay) the sender. Never throws: an unreadable folder counts as "not the sender". */
    tryAcquire(): Promise<boolean>;
    /** Write the lock if there is none; false when it exists. */
    create(): Promise<boolean>;
    /**
     * @param {string} text
     * @param {number} mtimeMs
     */
    isStale(text: string, mtimeMs: number): boolean;
    /**
     * Replace a stale lock whose content is `text`. It is first moved aside, so that of several processes taking it
     * over at once only one moves that file; one that moved a fresh lock instead (written in between) puts it back.
     * @param {string} text
     */
    takeOver(text: string): Promise<boolean>;
    hold(): boolean;
    /** Refresh the lock's mtime while it still names this transport; notice when it does not. */
    beat(): Promise<void>;
    lose(): void;
    /**
     * Give the lock up (synchronous, so that it also works in an `exit` listener). The file goes whenever it names this
     * transport, held or not: an exit may come between creating it and knowing it (an attempt in progress).
     */
    release(): void;
}
export type Holder = {
    pid: number;
    start: string;
    host: string;
    boot: string;
    token: string;
};
