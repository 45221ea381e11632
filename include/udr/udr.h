/*
 * udr/udr.h - umbrella header of libudr, the Unified Data Runtime.
 */
#ifndef UDR_UDR_H
#define UDR_UDR_H

#include "common.h"
#include "store.h"
#include "catalog.h"
#include "db.h"
#include "txn.h"
#include "log.h"
#include "refs.h"
#include "gc.h"

#endif
