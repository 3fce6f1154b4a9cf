/**
 * @membrane/types — the vocabulary every Membrane package shares. Each concept has its one
 * home here, and the other packages import it instead of keeping a copy.
 */
export {}
