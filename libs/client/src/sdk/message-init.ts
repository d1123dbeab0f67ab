type Builtin = Date | ((...args: never[]) => unknown) | Uint8Array | string | number | boolean | undefined;

/**
 * A message with every field optional, nested messages included; what the
 * generated `fromPartial` accepts. Oneof members keep their `$case`.
 */
export type MessageInit<T> = T extends Builtin
  ? T
  : T extends Array<infer U>
    ? Array<MessageInit<U>>
    : T extends ReadonlyArray<infer U>
      ? ReadonlyArray<MessageInit<U>>
      : T extends { $case: string }
        ? { [K in keyof Omit<T, '$case'>]?: MessageInit<T[K]> } & { $case: T['$case'] }
        : T extends object
          ? { [K in keyof T]?: MessageInit<T[K]> }
          : Partial<T>;
