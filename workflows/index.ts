// The workflow bundle's entry point: only deterministic code is reachable from here.
export { checkSession } from './check-session';
export { fulfillCheckout } from './fulfill-checkout';
export { reconcile } from './reconcile';
export { routeMoneyBack } from './route-money-back';
export { fulfillPaymentIntent } from './fulfill-payment-intent';
