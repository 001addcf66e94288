// The workflow bundle's entry point: only deterministic code is reachable from here.
export { fulfillCheckout } from './fulfill-checkout';
