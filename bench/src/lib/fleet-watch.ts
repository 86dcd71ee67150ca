// What simulated machines saw during a dispatch run: when each order's dispense arrived (every
// arrival, so a second one shows up), re-sent commands by kind, and disconnects.
import type { SimulatedMachine } from '@kioskhub/machine-simulator';

export interface FleetWatch {
  /** order id → performance.now() of every machine:dispense received for it */
  arrivals: Map<string, number[]>;
  /** commands the machines handled other than by dispensing (re-sends they de-duplicated) */
  handling: Record<string, number>;
  readonly disconnects: number;
}

export function watchFleet(machines: Iterable<SimulatedMachine>): FleetWatch {
  let disconnects = 0;
  const watch = {
    arrivals: new Map<string, number[]>(),
    handling: {} as Record<string, number>,
    get disconnects() {
      return disconnects;
    },
  };
  for (const machine of machines) {
    machine.on('dispense', ({ command }) => {
      const list = watch.arrivals.get(command.orderId);
      if (list) list.push(performance.now());
      else watch.arrivals.set(command.orderId, [performance.now()]);
    });
    machine.on('command', ({ handling: h }) => {
      if (h !== 'dispense') watch.handling[h] = (watch.handling[h] ?? 0) + 1;
    });
    machine.on('disconnect', () => (disconnects += 1));
  }
  return watch;
}
