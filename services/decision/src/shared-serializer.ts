import { DecisionServiceService, Event } from '@autoglm/proto';

/**
 * DecisionService with Subscribe's serializer memoised per Event object. The
 * event bus hands the same object to every subscriber, so an event fanned out
 * to the monitor, the parsers and any watcher is encoded once, not once each.
 */
export function withSharedEventEncoding(): typeof DecisionServiceService {
  const encoded = new WeakMap<Event, Buffer>();
  const subscribe = DecisionServiceService.subscribe;
  return {
    ...DecisionServiceService,
    subscribe: {
      ...subscribe,
      responseSerialize: (event: Event): Buffer => {
        let bytes = encoded.get(event);
        if (!bytes) encoded.set(event, (bytes = subscribe.responseSerialize(event)));
        return bytes;
      },
    },
  };
}
