// LIKE patterns built from user text, the same on both engines (each query says `escape '\'`).

/** `%`, `_` and `\` are LIKE wildcards or the escape character: match them literally. */
export const likeEscape = (text: string): string => text.replace(/[\\%_]/g, (c) => `\\${c}`);
