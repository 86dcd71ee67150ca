// The four cluster scenarios (several Kioskhub processes on PostgreSQL + Redis), for run.ts and
// for the standalone runner next to this file.
import { clusterDispatchScenario } from './cluster-dispatch.js';
import { clusterDrainScenario } from './cluster-drain.js';
import { clusterMachinesScenario } from './cluster-machines.js';
import { clusterWebhookScenario } from './cluster-webhook.js';

export const CLUSTER_SCENARIOS = {
  'cluster-webhook': clusterWebhookScenario,
  'cluster-dispatch': clusterDispatchScenario,
  'cluster-machines': clusterMachinesScenario,
  'cluster-drain': clusterDrainScenario,
} as const;

export type ClusterScenarioName = keyof typeof CLUSTER_SCENARIOS;
