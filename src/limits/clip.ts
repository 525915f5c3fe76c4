/** The most of any client-supplied text (an event name, a message) echoed in an error reply or a log line. */
export const MAX_ECHO_CHARS = 64;

/** `text` cut to MAX_ECHO_CHARS, marked with an ellipsis and the original length when cut. */
export function clip(text: string, max = MAX_ECHO_CHARS): string {
  return text.length <= max ? text : `${text.slice(0, max)}…(${text.length} chars)`;
}

/** Error messages are the server's own, but may quote client input (a room name, an id): bounded too. */
export const MAX_ERROR_MESSAGE_CHARS = 256;
