// Wire schema helpers shared by the payment routes and the channels built on them.
import { Type } from '@sinclair/typebox';

/** Free text that is stored: never a NUL character (PostgreSQL refuses it in text columns). */
export const Text = (o: { minLength?: number; maxLength: number; description?: string }) =>
  Type.String({ ...o, pattern: '^[^\\u0000]*$' });
